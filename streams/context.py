"""What the agents share in one worker process: settings, codecs, the producer, the feature
config, the entity replica and the decider (model + rules + policy + blocklists). Built
lazily, once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from infra import topics
from infra.settings import Settings, get_settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.outputs import Outputs


@dataclass
class Codecs:
    purchase: AvroCodec
    auth: AvroCodec
    transfer: AvroCodec


class Context:
    @cached_property
    def settings(self) -> Settings:
        return get_settings()

    @property
    def prefix(self) -> str:
        return self.settings.kafka.topic_prefix

    @cached_property
    def codecs(self) -> Codecs:
        registry = registry_from_settings(self.settings)
        return Codecs(
            purchase=AvroCodec.for_topic(registry, topics.PURCHASES),
            auth=AvroCodec.for_topic(registry, topics.AUTH_EVENTS),
            transfer=AvroCodec.for_topic(registry, topics.CHAIN_TRANSFERS),
        )

    @cached_property
    def outputs(self) -> Outputs:
        return Outputs(self.settings, component="sentinel-worker")

    @cached_property
    def feature_config(self):
        from processors.features import FeatureConfig

        return FeatureConfig(**self.settings.stream.feature_knobs())

    @cached_property
    def replica(self):
        """This worker's copy of every IP, device, card and show state (started on first use)."""
        from streams import rd_fetch
        from streams.entity_replica import EntityReplica

        replica = EntityReplica(self.settings, self.codecs.purchase).start()
        rd_fetch.FEEDS[replica.topic] = replica  # the reader's records of the worker's partitions
        return replica

    @cached_property
    def redeliveries(self):
        """Purchases redelivered with their decision already on the topic."""
        from streams.redelivery import Redeliveries, TailReader

        decisions = self.outputs.decisions
        return Redeliveries(TailReader(self.settings,
                                       lambda value: decisions.decode(value)["purchase_id"]))

    @cached_property
    def marks(self):
        """Confirmed fraud marks (the marks topic), read to its end on first use."""
        from streams.marks_follower import MarksFollower

        return MarksFollower(self.settings)

    @cached_property
    def decider(self):
        from streams.decider import LiveDecider

        return LiveDecider(self.settings)


ctx = Context()
