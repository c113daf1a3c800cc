// The configuration every command starts from: loaded and validated before anything else
// happens, with exit code 2 (and every problem listed) when it is invalid.
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.ts';
import { createLogger, type Logger } from '../log.ts';

export const EXIT_CONFIG = 2;

/** A flag or argument that cannot be used (exit 2, like a bad configuration). */
export class UsageError extends Error {}

export interface CommonOptions {
  config?: string;
  logLevel?: string;
  logFormat?: string;
  /** exporter-toolkit's flags (--web.listen-address, --web.telemetry-path, --web.config.file), where a command takes them. */
  'web.listenAddress'?: string;
  'web.telemetryPath'?: string;
  'web.config.file'?: string;
}

/** Runs a step that validates more configuration (a file it names): ConfigError exits 2. */
export function configOrExit<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tokenwatch: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
}

export function loadOrExit(options: CommonOptions): { loaded: LoadedConfig; logger: Logger } {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({
      file: options.config,
      flags: { listenAddress: options['web.listenAddress'], telemetryPath: options['web.telemetryPath'], webConfigFile: options['web.config.file'] },
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tokenwatch: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  if (options.logLevel) loaded.config.log.level = options.logLevel as LoadedConfig['config']['log']['level'];
  if (options.logFormat) loaded.config.log.format = options.logFormat as LoadedConfig['config']['log']['format'];
  const logger = createLogger({ level: loaded.config.log.level, format: loaded.config.log.format });
  return { loaded, logger };
}
