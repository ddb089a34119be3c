"""The mapping table: HWU64/SLURP intents and entity types to Home Assistant intents and slots.

:data:`INTENT_MAP` says where each corpus intent goes (default intent, fixed slots, the intents a
per-utterance rule may choose instead, the rule and the reason); :data:`ENTITY_TYPE_MAP`
documents how each entity type becomes part of a pattern; :data:`PLACEHOLDER_ACCEPTS` lists the
placeholders a phrasing of each target intent may carry. The HWU64/SLURP handlers
(:mod:`selflearn.simulation.corpora.handlers`) implement the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ENTITY_TYPE_MAP",
    "INTENT_MAP",
    "OUT_OF_SCOPE",
    "PLACEHOLDER_ACCEPTS",
    "IntentMapping",
]

OUT_OF_SCOPE: Final = "OutOfScope"
"""Intent of requests Home Assistant's built-in intents cannot serve."""


# --------------------------------------------------------------------------------------------
# The mapping table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentMapping:
    """Where one HWU64/SLURP intent goes."""

    intent: str
    """Home Assistant intent (or ``OutOfScope``) the corpus intent maps to by default."""
    fixed_slots: Mapping[str, str] = field(default_factory=dict)
    """Fixed slots of the default mapping, e.g. ``{"domain": "light"}``."""
    alternatives: tuple[str, ...] = ()
    """Other intents a per-utterance rule may choose (``OutOfScope`` included when some
    utterances of an in-scope intent cannot be served)."""
    rule: str = ""
    """How the utterance decides between the default and the alternatives."""
    reason: str = ""
    """Why: what Home Assistant can or cannot do for these requests."""

    @property
    def in_scope(self) -> bool:
        """Whether any utterance of this intent can map to a Home Assistant intent."""
        return self.intent != OUT_OF_SCOPE or any(a != OUT_OF_SCOPE for a in self.alternatives)


def _oos(reason: str) -> IntentMapping:
    return IntentMapping(OUT_OF_SCOPE, reason=reason)


_NO_ALARMS = "Home Assistant has no alarm-clock intent (timers are relative durations only)"
_NO_CALENDAR = "no built-in calendar/reminder intent"
_NO_EMAIL = "no e-mail or contacts intent"
_CHAT = "conversation management/chit-chat the built-in intents do not cover"
_NO_QA = "open-domain question answering; Home Assistant's built-in intents have no QA"
_NO_SERVICE = "third-party service (shopping, transport, social, news); no built-in intent"
_TIME = (
    "; utterances with a time/date constraint (scheduling, 'for two hours') are OutOfScope: "
    "Home Assistant acts now, it cannot schedule"
)
_MEDIA_ALTERNATIVES = (
    "HassMediaPause",
    "HassMediaUnpause",
    "HassMediaNext",
    "HassMediaPrevious",
    OUT_OF_SCOPE,
)
_MEDIA_RULE = (
    "transport words decide first: 'skip'/'next song' -> HassMediaNext, 'previous'/'go back' -> "
    "HassMediaPrevious, 'pause' -> HassMediaPause, 'resume'/'continue' without a named item -> "
    "HassMediaUnpause; otherwise HassMediaSearchAndPlay with fixed slot search_query = the words "
    "after 'play' (or the annotated media names when there is no 'play'); dropped when neither "
    "gives a query"
)

INTENT_MAP: Final[dict[str, IntentMapping]] = {
    # --- alarms
    "alarm_query": _oos(_NO_ALARMS),
    "alarm_remove": _oos(_NO_ALARMS),
    "alarm_set": IntentMapping(
        OUT_OF_SCOPE,
        alternatives=("HassStartTimer",),
        rule="HassStartTimer when the only time is a relative duration ('in/after N minutes', "
        "'N hours from now'), with {minutes}/{hours}/{seconds}; otherwise OutOfScope",
        reason=_NO_ALARMS,
    ),
    # --- audio
    "audio_volume_down": IntentMapping(
        "HassSetVolumeRelative",
        {"volume_step": "down"},
        ("HassSetVolume", OUT_OF_SCOPE),
        rule="'to N [percent]' -> HassSetVolume {volume}; 'by N percent' -> fixed volume_step=-N; "
        "no amount -> volume_step=down; non-numeric amounts ('to low') are dropped" + _TIME,
        reason="relative volume is HassSetVolumeRelative (volume_step up/down or a percentage)",
    ),
    "audio_volume_mute": IntentMapping(
        "HassMediaPlayerMute",
        alternatives=("HassMediaPlayerUnmute", OUT_OF_SCOPE),
        rule="'unmute' -> HassMediaPlayerUnmute" + _TIME,
        reason="mute the media player (device_type names the player -> {name})",
    ),
    "audio_volume_up": IntentMapping(
        "HassSetVolumeRelative",
        {"volume_step": "up"},
        ("HassSetVolume", "HassMediaPlayerUnmute", OUT_OF_SCOPE),
        rule="'unmute' -> HassMediaPlayerUnmute; 'to N [percent]' -> HassSetVolume {volume}; 'by N percent' "
        "-> fixed volume_step=N; no amount -> volume_step=up; non-numeric amounts ('to max', "
        "'to level seven') are dropped" + _TIME,
        reason="relative volume is HassSetVolumeRelative (volume_step up/down or a percentage)",
    ),
    # --- calendar
    "calendar_query": _oos(_NO_CALENDAR),
    "calendar_remove": _oos(_NO_CALENDAR),
    "calendar_set": _oos(_NO_CALENDAR),
    # --- cooking
    "cooking_query": _oos("recipes/cooking questions; no built-in intent"),
    "cooking_recipe": _oos("recipes/cooking questions; no built-in intent"),
    # --- date and time
    "datetime_convert": _oos("time-zone conversion; HassGetCurrentTime only tells the local time"),
    "datetime_query": IntentMapping(
        "HassGetCurrentTime",
        alternatives=("HassGetCurrentDate", OUT_OF_SCOPE),
        rule="HassGetCurrentDate when the text asks for the date/day/month/year; OutOfScope when it names "
        "another place or time zone, an event, or a date other than today",
        reason="Home Assistant answers the current local time and date only",
    ),
    # --- email
    "email_addcontact": _oos(_NO_EMAIL),
    "email_query": _oos(_NO_EMAIL),
    "email_querycontact": _oos(_NO_EMAIL),
    "email_sendemail": _oos(_NO_EMAIL),
    # --- general
    "general_affirm": _oos(_CHAT),
    "general_commandstop": IntentMapping(
        "HassNevermind",
        reason="'stop / that's enough / cancel it': HassNevermind cancels the current request",
    ),
    "general_confirm": _oos(_CHAT),
    "general_dontcare": _oos(_CHAT),
    "general_explain": _oos(_CHAT),
    "general_greet": IntentMapping("HassRespond", reason="greetings; HassRespond answers 'hello'"),
    "general_joke": _oos(_CHAT),
    "general_negate": _oos(_CHAT),
    "general_praise": _oos(_CHAT),
    "general_quirky": _oos(_CHAT),
    "general_repeat": _oos(_CHAT + " (no 'repeat that' intent)"),
    # --- iot
    "iot_cleaning": IntentMapping(
        "HassVacuumStart",
        alternatives=("HassVacuumCleanArea", OUT_OF_SCOPE),
        rule="HassVacuumCleanArea when an {area} is named, else HassVacuumStart; every device_type is the "
        "vacuum's {name}" + _TIME,
        reason="start the robot vacuum",
    ),
    "iot_coffee": _oos(
        "brewing coffee is not a built-in intent (a coffee machine plug would be HassTurnOn, "
        "but these requests ask for drinks, strengths and schedules)"
    ),
    "iot_hue_lightchange": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="needs a colour word ({color}; with several, the last) or a number ({brightness}); 'romantic', "
        "'party mode', 'random' or no colour at all -> OutOfScope" + _TIME,
        reason="HassLightSet sets a colour or a brightness",
    ),
    "iot_hue_lightdim": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="HassLightSet {brightness} only when a target number is said ('to forty percent'; 'to the "
        "lowest' -> fixed brightness=1); 'dim the lights', 'a bit', 'by twenty percent' -> OutOfScope"
        + _TIME,
        reason="Home Assistant has no relative-brightness intent",
    ),
    "iot_hue_lightoff": IntentMapping(
        "HassTurnOff",
        {"domain": "light"},
        (OUT_OF_SCOPE,),
        rule="device_type -> {name} unless it is a generic word ('lights', 'lamp')" + _TIME,
        reason="turn lights off",
    ),
    "iot_hue_lighton": IntentMapping(
        "HassTurnOn",
        {"domain": "light"},
        (OUT_OF_SCOPE,),
        rule="device_type -> {name} unless it is a generic word ('lights', 'lamp')" + _TIME,
        reason="turn lights on",
    ),
    "iot_hue_lightup": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="HassLightSet {brightness} only when a target number is said; 'to max'/'to full power' -> fixed "
        "brightness=100; 'brighten the lights', 'by twenty percent' -> OutOfScope" + _TIME,
        reason="Home Assistant has no relative-brightness intent",
    ),
    "iot_wemo_off": IntentMapping(
        "HassTurnOff",
        {"domain": "switch"},
        (OUT_OF_SCOPE,),
        rule="every device_type ('wemo plug socket', 'smart plug') is the switch's {name}; utterances "
        "saying another kind of device ('turn off kitchen fan') are dropped" + _TIME,
        reason="smart plugs are switch entities",
    ),
    "iot_wemo_on": IntentMapping(
        "HassTurnOn",
        {"domain": "switch"},
        (OUT_OF_SCOPE,),
        rule="every device_type ('wemo plug socket', 'smart plug') is the switch's {name}; utterances "
        "saying another kind of device ('turn on kitchen light') are dropped" + _TIME,
        reason="smart plugs are switch entities",
    ),
    # --- lists
    "lists_createoradd": IntentMapping(
        "HassShoppingListAddItem",
        alternatives=("HassListAddItem", OUT_OF_SCOPE),
        rule="'add/put X to/on [my] [L] list': X -> {item}; L empty/shopping/grocery -> "
        "HassShoppingListAddItem, another L -> HassListAddItem with L -> {name}; creating a list -> "
        "OutOfScope; other phrasings (item not locatable) are dropped",
        reason="adding an item is served; creating lists is not",
    ),
    "lists_query": _oos("reading lists back is not a built-in intent"),
    "lists_remove": IntentMapping(
        "HassShoppingListCompleteItem",
        alternatives=("HassListRemoveItem", OUT_OF_SCOPE),
        rule="'remove/delete/cross off X from [my] [L] list': shopping list -> HassShoppingListCompleteItem "
        "{item}, another L -> HassListRemoveItem {item} {name}; anything else (deleting a whole list, "
        "contacts, files) -> OutOfScope",
        reason="removing an item is served; deleting lists is not",
    ),
    # --- music
    "music_dislikeness": _oos("rating music; no built-in intent"),
    "music_likeness": _oos("rating music / adding to playlists; no built-in intent"),
    "music_query": _oos("'what song is this'; no built-in intent"),
    "music_settings": _oos("shuffle/repeat/equaliser; no built-in intent"),
    # --- news
    "news_query": _oos(_NO_SERVICE),
    # --- play
    "play_audiobook": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_game": _oos("games; no built-in intent"),
    "play_music": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_podcasts": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_radio": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    # --- question answering
    "qa_currency": _oos(_NO_QA),
    "qa_definition": _oos(_NO_QA),
    "qa_factoid": _oos(_NO_QA),
    "qa_maths": _oos(_NO_QA),
    "qa_stock": _oos(_NO_QA),
    # --- recommendations, social, takeaway, transport
    "recommendation_events": _oos(_NO_SERVICE),
    "recommendation_locations": _oos(_NO_SERVICE),
    "recommendation_movies": _oos(_NO_SERVICE),
    "social_post": _oos(_NO_SERVICE),
    "social_query": _oos(_NO_SERVICE),
    "takeaway_order": _oos(_NO_SERVICE),
    "takeaway_query": _oos(_NO_SERVICE),
    "transport_query": _oos(_NO_SERVICE),
    "transport_taxi": _oos(_NO_SERVICE),
    "transport_ticket": _oos(_NO_SERVICE),
    "transport_traffic": _oos(_NO_SERVICE),
    # --- weather
    "weather_query": IntentMapping(
        "HassGetWeather",
        alternatives=(OUT_OF_SCOPE,),
        rule="OutOfScope when it names another place or a time other than now (forecasts: 'tomorrow', "
        "'tonight', 'this week'); 'do I need an umbrella today' stays HassGetWeather",
        reason="HassGetWeather reports the home's current weather, not forecasts or other cities",
    ),
}
"""HWU64/SLURP intent (``scenario_action``) -> Home Assistant intent, fixed slots and rule."""

ENTITY_TYPE_MAP: Final[dict[str, str]] = {
    "house_place": "{area} when the intent takes an area and the words name a room; generic words "
    "('house', 'room', 'here', 'carpet') stay literal",
    "device_type": "{name} when it names a specific device (always for plugs, vacuums); generic words "
    "('lights', 'lamp', 'speakers') stay literal and the domain comes from the intent",
    "color_type": "{color} for colour words (HassLightSet); other descriptions make the request OutOfScope",
    "change_amount": "number words -> {brightness}/{volume} ('to fifty percent' -> 'to {brightness} "
    "percent'); 'max'/'full power' -> fixed brightness; relative amounts decide OutOfScope "
    "(lights) or "
    "volume_step (volume)",
    "time": "relative durations -> {minutes}/{hours}/{seconds} for timers; 'now' stays literal; any other "
    "time on an action makes it OutOfScope",
    "date": "'today' stays literal; other dates make actions/weather/time questions OutOfScope; kept literal "
    "inside media queries",
    "timeofday": "same as date ('tonight' on weather -> OutOfScope)",
    "list_name": "shopping/grocery words stay literal (shopping list); other list names -> {name}",
    "place_name": "other places make weather/time questions OutOfScope; literal elsewhere",
    "time_zone": "makes time questions OutOfScope",
    "media names": "song_name, artist_name, music_genre, playlist_name, radio_name, podcast_name, "
    "audiobook_name, ... stay literal and form the fixed search_query",
    "everything else": "literal words (person, relation, app_name, ...)",
}
"""Entity type -> how it becomes part of a pattern (documentation; the code below implements it)."""

PLACEHOLDER_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "HassTurnOn": frozenset({"name", "area", "floor"}),
    "HassTurnOff": frozenset({"name", "area", "floor"}),
    "HassLightSet": frozenset({"name", "area", "floor", "brightness", "color", "temperature"}),
    "HassVacuumStart": frozenset({"name", "floor"}),
    "HassVacuumCleanArea": frozenset({"name", "area"}),
    "HassSetVolume": frozenset({"name", "area", "volume"}),
    "HassSetVolumeRelative": frozenset({"name", "area", "floor"}),
    "HassMediaPlayerMute": frozenset({"name"}),
    "HassMediaPlayerUnmute": frozenset({"name"}),
    "HassMediaNext": frozenset({"name", "area"}),
    "HassMediaPrevious": frozenset({"name", "area"}),
    "HassMediaPause": frozenset({"name", "area"}),
    "HassMediaUnpause": frozenset({"name", "area"}),
    "HassMediaSearchAndPlay": frozenset({"name", "area"}),
    "HassShoppingListAddItem": frozenset({"item"}),
    "HassShoppingListCompleteItem": frozenset({"item"}),
    "HassListAddItem": frozenset({"item", "name"}),
    "HassListRemoveItem": frozenset({"item", "name"}),
    "HassStartTimer": frozenset({"hours", "minutes", "seconds", "timer_name"}),
    "HassGetWeather": frozenset(),
    "HassGetCurrentTime": frozenset(),
    "HassGetCurrentDate": frozenset(),
    "HassNevermind": frozenset(),
    "HassRespond": frozenset(),
}
"""Placeholders an HWU64/SLURP phrasing of each target intent may carry (from the intent's slot
combinations in ``home-assistant-intents``)."""
