"""The example records of ../shared/samples/records (ground truth in its README.md), shared by the
specifications of voicelake.records: where the samples are, the keys and ids they hold, and
arbitrary JSON values for fields of records that are broken or hostile."""
from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from tests.conftest import shared_path

CTR_BUCKET = "s3/example-connect-ctr-bucket"
CTR_HOUR_15 = "2024/05/14/15/voicelake-ctr-firehose-1-2024-05-14-15-11-02-65ede050-4b0b-4cf5-893e-5ba0b981ef46"
CTR_HOUR_16 = "2024/05/14/16/voicelake-ctr-firehose-1-2024-05-14-16-01-09-19a4485b-ebd2-4a73-99eb-ccadda346ef8"
CHIME_BUCKET = "s3/example-chime-records-bucket"
SDR_A = ("Amazon-Chime-Voice-Connector-SDRs/json/vl7k2m9q4x1c8r5t3w6z0b/2024/05/14/"
         "15.02.11.318_88e56ace-7bd2-46d7-ac66-1a08068be69a")
SDR_B = ("Amazon-Chime-Voice-Connector-SDRs/json/vl7k2m9q4x1c8r5t3w6z0b/2024/05/14/"
         "16.45.03.007_6d66ff25-9479-4344-9fe2-6498aee5dfcd")

INSTANCE_ID = "429ad289-d8da-4265-aaa5-12aa40cc5f8d"
VC_ID = "vl7k2m9q4x1c8r5t3w6z0b"
TX_A = "88e56ace-7bd2-46d7-ac66-1a08068be69a"
TX_B = "6d66ff25-9479-4344-9fe2-6498aee5dfcd"
STREAM_043EE98B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                   "lms-connect-voicelake-demo-contact-043ee98b-bc6a-4718-9c46-f3a9155dc0e2/1714521600412")
CALLER_LEG_A = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-00f2457a-8432-4ff5-bc14-5c108b826b60/1714487412093")
CALLEE_LEG_A = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-b7d04c6e-2f1a-4e58-9a3b-6c0e8f2d1a47/1714487412388")
LABEL1_B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
            "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-e2a9c150-7d3f-4b8e-a1c6-93f05b7d2e18/1714487413015")
LABEL2_B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
            "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-4f8b26d9-c03e-47a1-8d5b-2e7a9c1f60b3/1714487413342")


def sample_path(relative: str) -> Path:
    """A file or folder of the record samples; a missing one fails the test (conftest.shared_path)."""
    return shared_path("samples", "records", relative)


def sample_bytes(relative: str) -> bytes:
    return sample_path(relative).read_bytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12)
