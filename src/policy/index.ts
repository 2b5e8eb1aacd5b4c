// Public API of the policy engine: load a config (pure: bytes in), compile it, ask it.
//   const policy = compilePolicy(loadConfigFromBytes(bytes, '/etc/switchyard/config.toml'));
//   policy.decide({ network: 'tcp', process: 'zen.exe', domain: 'youtube.com' });
//   policy.projectDomain('youtube.com')  // → { egresses, uniform, egress, rule }
// Reading the file is done outside src/policy: see src/config-file.ts (loadConfigFile).
import { DEFAULT_CONFIG_TOML } from './config/default-toml.ts';
import { loadConfigFromBytes, loadConfigFromString } from './config/load.ts';
import type { Config } from './types.ts';

export * from './types.ts';
export { loadConfigFromBytes, loadConfigFromString, parseConfigToml } from './config/load.ts';
export { compilePolicy } from './engine/policy.ts';
export { configToToml } from './config/emit.ts';
export { normalizeQueryDomain } from './engine/query.ts';
export { PackedRules, plainRule } from './packed-rules.ts';
export { DEFAULT_CONFIG_TOML };
export * as limits from './config/limits.ts';

/** The embedded default config (config/default.toml), parsed; source = `embedded`. */
export function defaultConfig(): Config {
  return loadConfigFromString(DEFAULT_CONFIG_TOML, 'embedded');
}

export { loadConfigFromBytes as loadConfig };
