"""The domain library under the pipeline: no Beam, no transforms, no pipeline, no runners.

Sub-packages follow the data flow, each importing only what sits below it:

- ``records``: call records (Firehose objects, Connect CTRs, Chime SDRs and streaming events) ->
  ``CallSpec`` values; imports ``model``.
- ``media``: Kinesis Video Streams (``kvs_client``), the MKV parser and the channel files a
  stream's tracks are written to; imports ``model``, ``audio``.
- ``analysis``: a call's channels -> features, the VAD's segments and WAVs; imports ``media``,
  ``audio``, ``model``.
- ``export``: a finished lake -> ML units, shards, manifests and the dataset card; imports
  ``analysis`` (method notes), ``layout``, ``storage``, ``audio``.

Beside them, used by all: ``model`` (the values that travel between stages), ``layout`` (every
path of the lake), ``storage`` (S3 or local files), ``audio`` (PCM arithmetic), ``progress`` (the
heartbeat), ``plots`` (the report's figures).

Layers go one way: ``schemas`` (the tables) and ``voicelake`` (domain) <- ``transforms`` (one
PTransform per arrow of the data flow) <- ``pipeline`` (composition: graph, options, commands);
``runners`` (the local world, engines) may use everything.  tests/test_layers.py walks the imports.
"""
