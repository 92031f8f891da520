"""gdb for kcrash: `server` serves the dump's memory and the context task's registers over gdb's remote
serial protocol (also `kcrash --gdbserver unix:PATH`); `mi` runs the session's gdb child over MI for the
expressions kcrash cannot evaluate itself."""
