from mvit.errors import MvitError


class CheckpointError(MvitError, ValueError):
    """A checkpoint that cannot be read or does not fit; the message is one line for the user."""
