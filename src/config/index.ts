export { describeSettings, type LoadConfigInput, loadConfig, parseFlags } from './load.ts';
export { type Config, envOf, flagOf, type SettingName, settings } from './schema.ts';
