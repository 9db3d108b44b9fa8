"""Per-format parsers of the model-file scanner (see ``bot.checks.scan``).

Every parser reads bytes only: nothing here unpickles, imports model code, or loads a
framework. Each one either finishes its parse (and reports findings) or raises
:class:`~bot.checks.scanners.source.CannotVerify`, which the scanner turns into a "blocked" file.
"""
