"""A local Kinesis Video Streams endpoint that unmodified boto3 clients talk to over real HTTP.

``boto3.client('kinesisvideo', endpoint_url=URL)`` and
``boto3.client('kinesis-video-archived-media', endpoint_url=URL)`` both work against it.  It serves a
:class:`~runners.local.kvs_store.KvsStore` directory with the rest-json wire format that botocore
models for API version 2017-09-30 (shared/domain/kvs.md §4): POST requests with JSON bodies to
``/createStream``, ``/describeStream``, ``/listStreams``, ``/getDataEndpoint``, ``/listFragments`` and
``/getMediaForFragmentList``.  moto has no ListFragments or GetMediaForFragmentList (kvs.md §4.6),
which is why this package exists.

One module per concern:

* ``service`` — the API operations on the store, free of HTTP, with the service's own rules
  (validation, paging, throttling, retention, the clock);
* ``faults`` — the fault-injection model: what may go wrong (:class:`Faults`), the seeded draws, and
  where a media body breaks off;
* ``wire`` — the wire format: request bodies and fields, answer shapes, NextToken, error answers,
  the HTTP framing of media bodies;
* ``server`` — the HTTP server that joins them, and its life cycle (:func:`start_emulator`);
* ``cli`` — ``voicelake kvs-emulator`` and ``python -m runners.local.kvs_emulator``.

What it imitates, and the choices made where the real service is not documented:

* **Auth.** SigV4 signatures are not checked, but a request without an ``Authorization`` header
  gets ``NotAuthorizedException`` (401).  Authorization headers are never logged.  With
  ``Faults(deny_all=True)`` (``--deny-all``) every signed call gets ``AccessDeniedException`` (403),
  as when IAM does not allow the action.
* **Errors** use the real wire format (kvs.md §4.3): ``x-amzn-ErrorType: <Code>:<doc url>``,
  ``x-amzn-RequestId``, ``Content-Type: application/json`` and a body ``{"Message": ...}``.
  botocore reads the code from that header.
* **ListFragments** returns fragments whose *start* timestamp lies in the range, both ends
  included (kvs.md §4.1).  Each page is shuffled with a seed taken from the request's NextToken,
  because the real service returns fragments "in no specific order, even across pages".  Clients
  must therefore sort by ``int(FragmentNumber)``.  NextToken is opaque base64 that records where
  the next page starts, so paging stays exact while a generator keeps appending fragments.
* **Throttling.** More than ``tps_limit`` requests within one sliding second, per stream and per API
  (ListFragments, GetMediaForFragmentList and GetDataEndpoint counted separately), get
  ``ClientLimitExceededException`` (kvs.md §4.4).  Rejected requests do not count towards the
  window.  botocore does not retry this error.
* **Retention and clock.** The clock is real time unless ``now_ms`` freezes it, so stores seeded with
  historical dates can be served.  A fragment expires when its server timestamp is older than
  ``now - DataRetentionInHours``; with 0 hours the real 5-minute host buffer applies.  Expired
  fragments are not listed.  A ListFragments EndTimestamp before the retention start gets the real
  400 "End timestamp <ms> is outside of the stream retention period." (kvs.md §4.5).  That message
  was seen for SERVER_TIMESTAMP; the emulator also uses it for PRODUCER_TIMESTAMP.
* **Expired fragments in GetMediaForFragmentList.** Their chunk is replaced by the in-band error
  chunk ``AWS_KINESISVIDEO_ERROR_CODE=FRAGMENT_NOT_FOUND`` with ``ERROR_ID=4000`` (botocore's
  documented "Requested fragment is not found").  The real behaviour is unverified: it may instead
  be a 4xx (kvs.md §4.5), so consumers must handle both.
* **GetMediaForFragmentList body.** The body is ``Content-Type: video/webm`` for every stream,
  because it is always Matroska whatever the stream's MediaType (which names the tracks' codec);
  the header the real service sends is unverified.  The chunks are streamed in request order with
  ``Transfer-Encoding: chunked``.  Chunked encoding imitates a service that starts sending before it
  knows the total length.  It also makes the two stream faults distinguishable: the
  terminating zero-length chunk lets a truncated body end cleanly (the client just sees EOF), while
  a reset without it is a broken stream.
* **Fault injection** (all off by default; one ``random.Random(seed)`` per server, so runs repeat):
  throttling and HTTP 500 ``InternalFailure`` for ListFragments and GetMediaForFragmentList;
  for GetMediaForFragmentList also a connection reset (RST) inside a fragment, a clean truncation
  inside a fragment, a clean end of body between two SimpleBlocks (what arrives parses without
  error: only the listing tells that the last fragment is short), and single fragments replaced by
  the in-band error chunk with ``ERROR_ID=3000``.
  That is exactly what aws/aws-sdk-js#3217 shows for a fragment that was not yet consistent (kvs.md §1.5).

The control plane is the minimum the pipeline needs.  CreateStream ignores DeviceName, KmsKeyId,
Tags and StreamStorageConfiguration.  Every stream is ACTIVE.
"""
from runners.local.kvs_emulator.cli import main
from runners.local.kvs_emulator.faults import Faults, simple_block_ends
from runners.local.kvs_emulator.server import KvsEmulator, start_emulator

__all__ = ["Faults", "KvsEmulator", "main", "simple_block_ends", "start_emulator"]
