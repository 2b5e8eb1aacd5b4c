// The daemon's control methods. Permission classes (docs/cli.md): `read` changes nothing and is
// open to permitted readers; `change` needs root, the daemon's user (user mode) or the control
// group. The table is split by group; `methods` lists them in this registration order.
import type { MethodRegistry } from '../control/index.ts';
import type { Daemon } from './daemon.ts';
import { registerListMethods } from './list-methods.ts';
import { registerReadMethods } from './read-methods.ts';
import { registerRevisionMethods } from './revision-methods.ts';
import { registerChangeMethods } from './change-methods.ts';

export { describeStoreName, type FlowView, type DomainProvenance } from './read-methods.ts';

export function registerMethods(reg: MethodRegistry, d: Daemon): MethodRegistry {
  registerListMethods(reg, d);
  registerReadMethods(reg, d);
  registerRevisionMethods(reg, d);
  registerChangeMethods(reg, d);
  reg.register({
    name: 'methods',
    permission: 'read',
    summary: 'the control methods and their permission classes',
    handler: () => reg.list(),
  });
  return reg;
}
