"""Video and image I/O: probing, decoding, encoding, with PyAV.

Everything that touches FFmpeg lives here so that the other stages see only
numpy arrays, pts and plain metadata. Resizing and pixel-format conversion are
done by swscale (in C) through PyAV, never with numpy.

Timestamps are kept as the container gives them (`pts` in the stream's
`time_base`) and written back unchanged, so variable-frame-rate input stays
variable and audio stays in sync when it is copied packet for packet.

The stage is one package of small modules, each importing only those before it:

    files     input checks, no overwriting, temporary names, a full disk
    encoding  pixel formats and encoder settings (the luma-keeping default)
    probing   what a video is: size, frames, rate, duration, streams
    pixels    a decoded frame as a numpy array, upright
    photos    still images in and out, 16 bits and alpha kept
    reader    frames from a video or an image folder, in display order
    sequences numbered photos (a film scanned to frames) as one video
    containers what a container type can hold, found by writing a header
    copies    a source's audio, subtitles, cover, chapters and tags, carried over
    writer    VideoWriter: frames out, with the copies muxed between them
"""

from framecolor.video.encoding import (
    DEFAULT_CRF,
    DEFAULT_ENCODER,
    FULL_RANGE,
    check_encoder,
    check_frame_rate,
    codes_a_rate_table,
    default_pix_fmt,
    encoder_name,
    encoder_options,
)
from framecolor.video.files import (
    VIDEO_SUFFIXES,
    VideoWarning,
    check_output_path,
    check_writable_folder,
    is_video_path,
    list_videos,
    check_container_name,
    check_exists,
    folders_to_make,
    make_output_folder,
    remove_empty_folders,
)
from framecolor.video.photos import (
    IMAGE_SUFFIXES,
    WRITTEN_IMAGE_SUFFIXES,
    check_photo_name,
    Photo,
    describe_photo,
    is_image_path,
    list_images,
    natural_key,
    read_image,
    read_photo,
    shown_size,
    stored_size,
    write_image,
    write_photo,
)
from framecolor.video.pixels import FORMATS
from framecolor.video.describing import describe
from framecolor.video.probing import (
    COUNT_PACKETS_MAX_BYTES,
    StreamInfo,
    VideoInfo,
    display_rotation,
    picture_ends_first,
    probe,
    quarter_turns,
)
from framecolor.video.reader import Frame, opening_pictures, read_frames
from framecolor.video.sequences import (
    DEFAULT_SEQUENCE_FPS,
    check_soundtrack,
    frame_rate,
    photo_film,
    probe_photo_film,
    read_photo_film,
    sequence_key,
    why_not_one_film,
)
from framecolor.video.writer import VideoWriter

__all__ = [
    "COUNT_PACKETS_MAX_BYTES", "DEFAULT_CRF", "DEFAULT_ENCODER", "DEFAULT_SEQUENCE_FPS", "FORMATS", "FULL_RANGE", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "WRITTEN_IMAGE_SUFFIXES",
    "Frame", "Photo", "StreamInfo", "VideoInfo", "VideoWarning", "VideoWriter",
    "check_encoder", "check_frame_rate", "check_output_path", "check_writable_folder", "check_soundtrack", "codes_a_rate_table", "default_pix_fmt", "describe", "describe_photo", "display_rotation", "encoder_name", "encoder_options", "frame_rate", "is_image_path", "is_video_path", "make_output_folder", "check_container_name", "check_exists", "folders_to_make", "remove_empty_folders", "check_photo_name",
    "list_images", "list_videos", "natural_key", "opening_pictures", "photo_film", "picture_ends_first", "probe", "probe_photo_film", "quarter_turns", "read_frames", "read_image", "read_photo", "read_photo_film", "sequence_key", "shown_size", "stored_size", "why_not_one_film", "write_image", "write_photo",
]
