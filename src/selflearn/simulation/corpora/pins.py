"""The pinned files of ``selflearn data fetch``: where each comes from, its size and SHA-256.

The checksums are those of the files the project's figures were made with (the shared data
directory's bytes: the upstream files as published at the pinned commits, and the one derived
file). A new pin is a new corpus version: rebuild the starter and the benchmarks' figures with it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HA_INTENTS", "HA_TESTS_FILES", "HWU64_FILE", "NLU_EVALUATION_DATA", "SLURP", "SLURP_DEVEL"]

HA_INTENTS: Final = ("home-assistant/intents", "aa550032a57b67c13995c032220bc4101521ead2")
"""(repository, commit) of Home Assistant's intents: its English test sentences (2025-07-04)."""

NLU_EVALUATION_DATA: Final = ("xliuhw/NLU-Evaluation-Data", "f6071b496b17d71e6eb43f543af0707f4ff30557")
"""(repository, commit) of HWU64, whose cross-validation folds ``hwu64`` is derived from."""

SLURP: Final = ("pswietojanski/slurp", "8eb16545762be97ace75334109d73824217311f1")
"""(repository, commit) of SLURP (2022-04-20)."""

HA_TESTS_FILES: Final[tuple[tuple[str, str, int], ...]] = (
    ("HassGetState/name_only.yaml", "e6799100badc1b9d2691194354859e4de7b472983b1729bcde7360e1af89c634", 377),
    ("HassGetState/name_state.yaml", "3e9b8eecb64d991b3d9bf4cee57ce16d86a6cc775a891dcc661259942d06dd47", 447),
    (
        "HassLightSet/name_brightness.yaml",
        "6eba8adc894050435e0fc3d408e142ce5ad930e21824daee1a9bfe7b5e6f9a6d",
        663,
    ),
    ("HassLightSet/name_color.yaml", "57521f05e93baab65dd7b98bb2bd7a6ca2ee7138d3002fb4b7848f58695ed07e", 394),
    (
        "HassMediaSearchAndPlay/area_only.yaml",
        "35b1e5836f22507183c46fbd587e2f22c68082244959f1695b633a83bf95ec02",
        356,
    ),
    (
        "HassMediaSearchAndPlay/name_area.yaml",
        "48dcc42d2e4d1bbb081b4631f8219745e5b6f86060ecaa02d74889f079cba547",
        464,
    ),
    (
        "HassMediaSearchAndPlay/name_only.yaml",
        "55d3ac2c28b6d39c47a80b22a299847cc0de48f1c55214d3a0132e291a0974f6",
        374,
    ),
    ("HassTimerStatus/default.yaml", "d6feb40672a022ca0a5c60a4a2513bd72d79d81dfa020c44639684640f1d9364", 788),
    ("HassTurnOff/area_domain.yaml", "2576970c5d46ccc1c575c61f9f28a9f45b67d415a0bc0886eb4d50c235bac379", 328),
    ("HassTurnOff/domain_only.yaml", "ce510e82e08a4b6f7b559243f6fd6885320ca67ab535f322fe029cb76cc68be9", 553),
    ("HassTurnOff/name_only.yaml", "2d69c6f21b7f8b39b547ae471f173507d0cd873553cb774ec1248be6d0eefb0b", 519),
    ("HassTurnOn/domain_only.yaml", "6c266176e65fd9a513d58620d6b50879556efe846f42df8026cd2dff9e634452", 587),
    ("HassTurnOn/name_only.yaml", "29b76d622d942a16020a161861324b7de3a00d312aae0bb59a9cb680cfa9bef5", 502),
    ("_fixtures.yaml", "b98e5510569ba2017f3fff67c6d01fc299eeda160dc3d36900f1c63e050a4814", 16886),
    (
        "assist_satellite_HassBroadcast.yaml",
        "b0a1471c5a9e78fa2fb6191150eb843f68fc20c603410a71fb0aa207605c9c10",
        183,
    ),
    (
        "binary_sensor_HassGetState.yaml",
        "65073f50372e3d02e62d04ac8ca3cfe613a63c5689541e366277ca8c9a5c5167",
        25111,
    ),
    ("cover_HassGetState.yaml", "fe1ab051d7520394e6dbdeb43790c90f3c46d8e2bb626ba3a8fb9ac3ea6a9ac5", 3165),
    ("cover_HassSetPosition.yaml", "ba04759dff7d22300a76e0ff0e01264afcc719f93c77dd9003132be819c7c836", 892),
    ("cover_HassTurnOn.yaml", "591ce8077ad81b7b89ea3b587424e828634c0efc776bfde6cf965ce4d42c1d28", 1611),
    ("fan_HassTurnOff.yaml", "06ea940fc25bf00dacf47622d8b26abf048da98397ed57fb2517d6782e43a020", 1215),
    (
        "homeassistant_HassCancelAllTimers.yaml",
        "ac7ca2ae3fd2bfc895ddd8d5c8f5deba17f6644a413b497963df003fdb5ff487",
        457,
    ),
    (
        "homeassistant_HassCancelTimer.yaml",
        "126ce4588dd10738b0cc303b4928aca150bcfefe2057440126a2a0bdfb59cc49",
        833,
    ),
    (
        "homeassistant_HassDecreaseTimer.yaml",
        "b13a957417d57e22de7162b739daff976dff7b0de291a5171270e2028c194e10",
        1645,
    ),
    (
        "homeassistant_HassGetCurrentDate.yaml",
        "a238cd36c5af5b32e313fc5dd238ccdbf1f0f3e7bd3bf76f9773a148e1c3b864",
        229,
    ),
    (
        "homeassistant_HassPauseTimer.yaml",
        "cec520684f28c51817a7f76be0e28b1b131e473f7b976a2ecf11146c262a1a87",
        722,
    ),
    (
        "homeassistant_HassRespond.yaml",
        "234e395b0ed43a6931dcbd9d0cbf561ee6a8b49e937c79af385db589b0c49ea7",
        795,
    ),
    (
        "homeassistant_HassStartTimer.yaml",
        "16c9de4825156676c8d653905bdc0b24a4e971082b5a505682f0a6231ee3d458",
        4681,
    ),
    (
        "homeassistant_HassTurnOff.yaml",
        "4a6daf2ff0b97078973d82cd4f526a8584ef9a27d272a35b1b9fdeedb6493f14",
        539,
    ),
    (
        "homeassistant_HassTurnOn.yaml",
        "747bff2420d57993457b8b4de7d21c50f60507e8a19df94f10c34de523c4fc7b",
        550,
    ),
    (
        "homeassistant_HassUnpauseTimer.yaml",
        "d8ad1b898b7b75192169c80ed195917e4823876948d8b83784e1322c0b16911e",
        750,
    ),
    ("light_HassLightSet.yaml", "8491db6ff2a78fb373edc5722a2d755f4694eb2de0df692b601f7e5ec54f4903", 4768),
    ("light_HassTurnOff.yaml", "210883f0682f288a9c35418a8c763e3f0dc412a722ff8d42884304a3699040a7", 6383),
    ("light_HassTurnOn.yaml", "ea2283e3e9f166bb8830a10b61a40ac380b6e7c7b61f81ab994569b86ac223ac", 7488),
    ("lock_HassGetState.yaml", "71734bbf3d00343b65ed91f3396c2b096b990f7d5d4d2dca06e0aa76d2496788", 1698),
    ("lock_HassTurnOff.yaml", "9adb124076bcaede2ff3746622e2ee9f28f6a2a434df220e53006900e00331da", 529),
    ("lock_HassTurnOn.yaml", "e0172891714684b6158ffebd92617a395f1a9cc739d69ecf4e170b6b6173a285", 493),
    (
        "media_player_HassMediaNext.yaml",
        "cc4527799b66d6f544ccc11dc0ee70865f6dd98f55a3c4d416f86304738da5e2",
        1055,
    ),
    (
        "media_player_HassMediaPause.yaml",
        "648dfa8f46062c072412ec8f667e7145b5b4a04d35f9fa3fba4b04bbf5f78055",
        626,
    ),
    (
        "media_player_HassMediaUnpause.yaml",
        "0a794b228401db1e05b0dca69f336208ab8e2d744051d0a11d5053658f6bcfd4",
        702,
    ),
    (
        "media_player_HassSetVolume.yaml",
        "3a9eaec3f80c24d2e230992b700c103cb3d67719ff9a72f0ecea539a8c07370d",
        1371,
    ),
    ("scene_HassTurnOn.yaml", "adebff52e9bc982f3cd7cd508fd48928b67a1dad197d545732332aeac3b8a149", 918),
    ("script_HassTurnOn.yaml", "a1d5f511103ea4701024242af330b051d2d271d0ecffc7b9dac6509a140a8d14", 325),
    ("sensor_HassGetState.yaml", "dfc4bf19bc65ed68c7c3f3f2f4aaabfdfe827536b0d0389c9c3ee157dda0a161", 13370),
    (
        "shopping_list_HassShoppingListAddItem.yaml",
        "7aba3156a088f582d3754d2049563e2046a9a886aba9c525bafa3500e12c9cab",
        216,
    ),
    ("todo_HassListAddItem.yaml", "4cbefd01a5237bb1efafb25cbfb21316b7eeaa0ad9671af0e4489936d6f18340", 251),
    (
        "todo_HassListCompleteItem.yaml",
        "1930aaaab91a78299c908f72fae6bd01eb6617c808c5396552d9410e9ea24836",
        520,
    ),
    ("valve_HassSetPosition.yaml", "9193f159724658febfdf53193c3eef5a14b149765559831918596b0a10b8f6e0", 299),
    ("valve_HassTurnOff.yaml", "9da7c03c60e3af138207cbd5d5cf1b54f4f297f347390e9f2d34031d9468fc4f", 189),
)
"""(path under ``tests/en`` -- upstream and in ``DIR/home_assistant_intents/tests/en`` --, SHA-256,
bytes): ``_fixtures.yaml`` and the 47 of the 67 English test files the project learns from (the
other 20 are held out for evaluation: docs/corpora.md)."""

SLURP_DEVEL: Final = ("00d346b183ecc2d160853cd3dc20e8ccd207d9e1809cf6e2c05182076bd0ecc9", 2221203)
"""(SHA-256, bytes) of SLURP's ``dataset/slurp/devel.jsonl``, stored as ``DIR/slurp/devel.jsonl``."""

HWU64_FILE: Final = ("b14b12d26692d23d64549732afe7c9eb541d53f446906050d9edf7a613326f48", 3163936)
"""(SHA-256, bytes) of ``DIR/hwu64/hwu64_cv_minus_slurp_test.jsonl``, derived from HWU64's folds."""
