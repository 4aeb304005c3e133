"""The labels of a stream carried to its output stream: language, title, handler name and
disposition (default, forced, comment, hearing_impaired, ...).

PyAV's ``add_stream`` and ``add_stream_from_template`` start a stream with no tags and no
disposition, so without this an mp4's ``fra`` audio becomes ``und``. Durations, encoder names
and statistics tags are left out: the muxer writes its own. The output keeps the input's
container, so what it holds is what the input could hold (FFmpeg 8.1's muxers, as PyAV 18
bundles them):

- mp4: language, title, handler name; dispositions default, forced, dub, comment,
  hearing_impaired, visual_impaired, captions, descriptions (``kind`` boxes; hearing_impaired
  and captions read back together, as do visual_impaired and descriptions);
- mov: language, title, handler name; of the dispositions only default (the track's enabled
  flag);
- mkv: all three tags; dispositions default, forced, dub, original, comment,
  hearing_impaired, visual_impaired;
- webm: all three tags; dispositions default and forced.

mp4 and mov mark the first stream of each kind default when none is.
"""

from __future__ import annotations

from typing import Any, Dict

#: Stream tags carried to the output, under FFmpeg's (lowercase) names.
KEPT_STREAM_TAGS = ("language", "title", "handler_name")


def _is_mov_family(stream: Any) -> bool:
    fmt = getattr(getattr(stream, "container", None), "format", None)
    return fmt is not None and "mov" in str(fmt.name).split(",")


def kept_stream_tags(stream: Any) -> Dict[str, str]:
    """The :data:`KEPT_STREAM_TAGS` that ``stream`` (an input ``av`` stream) has.

    Names are matched in any case (the Matroska demuxer reads ``HANDLER_NAME``). A track title
    in mp4/mov is read back as ``name`` (FFmpeg's muxer writes ``title`` into the track's
    ``name`` box): it is returned as ``title``, which the muxer writes there again.
    """
    tags = {str(k).lower(): str(v) for k, v in stream.metadata.items()}
    if "title" not in tags and "name" in tags and _is_mov_family(stream):
        tags["title"] = tags["name"]
    return {k: tags[k] for k in KEPT_STREAM_TAGS if k in tags}


def copy_stream_labels(src: Any, dst: Any) -> None:
    """Give the output stream ``dst`` the kept tags and the disposition of the input stream
    ``src``; call before the first packet is muxed (the header carries them)."""
    dst.metadata.update(kept_stream_tags(src))
    dst.disposition = src.disposition
