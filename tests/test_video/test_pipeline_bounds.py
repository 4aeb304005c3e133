"""Memory bounds: frames alive at once in the pipeline, the encoder's look-ahead."""

from __future__ import annotations

from lptn.video.pipeline import max_frames_in_flight


def test_small_frames_are_bounded_by_the_batches() -> None:
    assert max_frames_in_flight(1920, 1080, 8, 1) == 12  # 4 batches + 8
    assert max_frames_in_flight(1920, 1080, 8, 4) == 24


def test_large_frames_are_bounded_by_bytes() -> None:
    # 4K 8-bit: 24.9 MB of RGB a frame, twice (input and output) -> 10 frames in 512 MiB
    assert max_frames_in_flight(3840, 2160, 8, 1) == 10
    # 8K 16-bit: 199 MB a frame; never fewer than the batch plus one decoding, one encoding
    assert max_frames_in_flight(7680, 4320, 10, 1) == 3
    assert max_frames_in_flight(7680, 4320, 10, 4) == 6


def test_encoder_lookahead_shrinks_with_the_frame_size() -> None:
    from lptn.video.video_writer import encoder_lookahead

    assert encoder_lookahead(1920, 1080) is None  # the preset's own (40 at medium)
    assert encoder_lookahead(3840, 2160) == 20
    assert encoder_lookahead(7680, 4320) == 5
