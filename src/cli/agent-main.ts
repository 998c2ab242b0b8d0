// The node agent's own entry point (bin/shoal.js picks it for `shoal agent ...`). The full CLI loads
// every role and the registry, undici and zod with them; an agent runs on every node under a
// memory budget, so it loads only its own command.
import { Command } from 'commander';
import { registerAgentCommand } from './agent-command.js';

const program = new Command().name('shoal').showHelpAfterError('(run with --help for usage)').enablePositionalOptions();
registerAgentCommand(program);
await program.parseAsync(process.argv);
