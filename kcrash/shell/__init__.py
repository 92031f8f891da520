"""The kcrash shell: command framework (spec, registry), the line runner (core), output sinks, the REPL,
batches and start-up.  Commands use it through kcrash.commands."""
