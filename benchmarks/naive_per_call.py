"""The baseline: what a per-call script does today, call after call, in one process.

For every call of a seeded world (streams and fragment numbers from its truth.json, so this
baseline skips record parsing entirely): GetMediaForFragmentList, the whole body read into memory,
an ebmlite whole-document parse, the blocks of each track by name concatenated, librosa resampling
to 16 kHz, RMS with librosa, and soundfile writing the WAV.  Usage:

    python -m benchmarks.naive_per_call TRUTH_JSON KVS_URL OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import ebmlite
import librosa
import numpy as np
import soundfile

SCHEMA = ebmlite.loadSchema("matroska.xml")


def client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def track_pcm(body: bytes) -> dict[str, bytearray]:
    """Track name -> concatenated SimpleBlock payloads, by a whole-document ebmlite walk."""
    names: dict[int, str] = {}
    out: dict[str, bytearray] = {}

    def walk(element):
        for child in element:
            if child.name == "TrackEntry":
                number = next(c.value for c in child if c.name == "TrackNumber")
                names[number] = next((c.value for c in child if c.name == "Name"), str(number))
            elif child.name == "SimpleBlock":
                raw = child.value
                out.setdefault(names.get(raw[0] & 0x7F, "?"), bytearray()).extend(raw[4:])
            elif child.name in ("Segment", "Tracks", "Cluster"):
                walk(child)

    walk(SCHEMA.loads(body))
    return out


def main(truth_path: str, kvs_url: str, out_dir: str) -> None:
    truth = json.loads(Path(truth_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    control = client(kvs_url, "kinesisvideo")
    for call in truth["calls"]:
        channels = []
        for stream in call["streams"]:
            endpoint = control.get_data_endpoint(StreamARN=stream["stream_arn"],
                                                 APIName="GET_MEDIA_FOR_FRAGMENT_LIST")["DataEndpoint"]
            media = client(endpoint, "kinesis-video-archived-media")
            tracks: dict[str, bytearray] = {}
            numbers = stream["fragments"]
            for start in range(0, len(numbers), 1000):  # the API's limit per request
                body = media.get_media_for_fragment_list(
                    StreamARN=stream["stream_arn"], Fragments=numbers[start:start + 1000])["Payload"].read()
                for name, pcm in track_pcm(body).items():
                    tracks.setdefault(name, bytearray()).extend(pcm)
            channels += [np.frombuffer(bytes(pcm), "<i2") for _, pcm in sorted(tracks.items())]
        n = min(len(c) for c in channels)
        y = np.stack([c[:n].astype(np.float32) / 32768 for c in channels[:2]])
        y16 = librosa.resample(y, orig_sr=8000, target_sr=16000, res_type="soxr_hq")
        librosa.feature.rms(y=y16, frame_length=400, hop_length=160, center=False)
        soundfile.write(out / f"{call['call_id']}.wav", y16.T, 16000, subtype="PCM_16")


if __name__ == "__main__":
    main(*sys.argv[1:4])
