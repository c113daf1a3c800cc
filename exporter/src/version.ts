// The version reported by --version and in OTLP resource attributes.
export const VERSION = '0.1.0';
