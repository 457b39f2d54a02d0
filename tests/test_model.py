"""The values that cross the shuffles stay small: a range's fragments travel packed."""
import pickle

from voicelake.model import FragmentList, ListedFragment

BASE = 91343852333181432392682062622220590765191907586  # a KVS fragment number's length


def listed(n: int) -> list[ListedFragment]:
    return [ListedFragment(str(BASE + 37 * i), 1_715_700_000_000 + 2000 * i, 1_715_700_000_090 + 2000 * i,
                           2000, 16_044 + i) for i in range(n)]


def test_packed_fragments_unpack_to_the_listing_in_order():
    fragments = listed(1000)
    packed = FragmentList.of(fragments)
    assert list(packed) == fragments and len(packed) == 1000
    assert list(pickle.loads(pickle.dumps(packed))) == fragments


def test_packed_fragments_cost_a_tenth_of_the_objects_in_a_shuffle():
    fragments = listed(150)  # a 5-minute call's leg
    assert len(pickle.dumps(FragmentList.of(fragments))) * 8 < len(pickle.dumps(tuple(fragments)))


def test_an_empty_listing_packs_and_unpacks():
    assert list(FragmentList.of([])) == [] and len(FragmentList.of([])) == 0
