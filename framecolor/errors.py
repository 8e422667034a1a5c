"""The errors a user can cause. The CLI prints them as one `error: ...` line."""


class FramecolorError(Exception):
    """Base of every error that is the user's input, not a bug in framecolor."""


class InputError(FramecolorError):
    """An input file or folder is missing, unreadable or of the wrong kind."""


class OutputError(FramecolorError):
    """An output cannot be written (exists, same as input, no such directory)."""


class DiskFullError(OutputError):
    """An output did not fit on its disk: training still writes its model file where that fits."""


class ModelFileError(FramecolorError):
    """A model or weight file is missing, corrupt, of another version or mismatched."""


class TrainingError(FramecolorError):
    """Training cannot go on: too little data, a non-finite loss, a bad resume."""
