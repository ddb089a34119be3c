"""The selflearn conversation entity (Home Assistant 2024.6 and newer): ``conversation.selflearn``.

An entity id a user can choose in *Settings -> Voice assistants* and name in
``conversation.process`` or ``POST /api/conversation/process`` (``agent_id:
conversation.selflearn``). Older cores get the config-entry agent instead (``__init__.py``).
"""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .agent import Selflearn
from .const import DOMAIN


class SelflearnConversationEntity(conversation.ConversationEntity):  # type: ignore[misc,unused-ignore]
    """Home Assistant's own agent first, selflearn's dialogue when it failed."""

    _attr_has_entity_name = False
    _attr_name = "selflearn"

    def __init__(self, entry: ConfigEntry, logic: Selflearn) -> None:
        self.logic = logic
        self._attr_unique_id = entry.entry_id
        # It runs the requests through Home Assistant's own agent, which controls the home: say
        # so, or the Assist dialog says "This assistant cannot control your home." (2024.7+).
        feature = getattr(conversation, "ConversationEntityFeature", None)
        if feature is not None:
            self._attr_supported_features = feature.CONTROL

    @property
    def supported_languages(self) -> list[str]:
        """selflearn's NLU and rewriter work in English."""
        return ["en"]

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Process a sentence (the agent's logic: :class:`~.agent.Selflearn`)."""
        return await self.logic.async_process(user_input)


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the entity of this config entry."""
    logic: Selflearn = hass.data[DOMAIN][entry.entry_id]["agent"]
    async_add_entities([SelflearnConversationEntity(entry, logic)])
