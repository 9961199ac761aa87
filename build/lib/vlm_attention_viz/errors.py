"""The one exception type the CLI turns into a single line on stderr."""


class UserError(Exception):
    """Something the user can fix: a bad input, a missing model, a full disk."""
