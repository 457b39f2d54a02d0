"""Media out of Kinesis Video Streams: the archived-media client with its retries and retention
rule (``kvs_client``), the streaming MKV/EBML parser (``mkv_parser``) and the per-track channel
files a stream is written to (``channel_file``).

May import ``voicelake.model``, ``voicelake.audio`` and ``voicelake.storage``; never Beam, records,
analysis or export code.
"""
