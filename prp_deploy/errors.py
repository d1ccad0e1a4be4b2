"""The one exception type for user-facing failures.

Anything a user can cause (a bad path, an unreadable video, a split file that names a
missing video, a checkpoint of another backbone) raises `PRPError` with a message that
names the file and says what was expected. The CLI prints it as one line and exits 1
(2 for a `UsageError`: options that do not go together, sources that name nothing).
Any other exception is a bug and keeps its traceback.
"""


class PRPError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class VideoError(PRPError):
    """A video file that cannot be opened or decoded as far as needed."""


class UsageError(PRPError):
    """The command line itself is wrong (exit 2, like click's own usage errors)."""
