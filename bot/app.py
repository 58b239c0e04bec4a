"""The Discord bot: ``setup_hook`` wires the store, the HTTP session, the webhook server,
the job service and the cogs together, and owns their shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot import backpressure, keepalive
from bot.backpressure import InteractionGate
from bot.catalog import retired_notice
from bot.config import Settings
from bot.jobs.service import JobService
from bot.jobs.types import JobUpdate
from bot.moderation.gate import RuleGate
from bot.posting.audit import AuditPoster
from bot.posting.delivery import DiscordDelivery
from bot.posting.embeds import link_text, result_embed, status_embed
from bot.posting.status import StatusBoard
from bot.posting.views import ResultActions, result_view
from bot.providers import make_provider
from bot.providers.base import VideoProvider
from bot.store import IdentityInUse, Store, StoreUnavailable
from bot.web.metrics import Metrics, PrometheusMetrics
from bot.web.server import StoredImages, WebhookServer

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.errors", "cogs.video", "cogs.quota", "cogs.results", "cogs.moderation", "cogs.jobs",
    "cogs.remix", "cogs.animate_menu",
)
SYNC_HASH_KEY = "global_commands_hash"
GUILD_READY_S = 0.5
DISCORD_CONNECTIONS = 100  # open connections to Discord, at most
RECEIVED_KEPT = 5000  # receive times kept for the latest interactions


class StartupError(Exception):
    """The bot cannot start; the message names the setting to fix."""


class VideoBot(commands.AutoShardedBot):
    store: Store
    session: aiohttp.ClientSession
    webhook: WebhookServer
    jobs: JobService
    status_board: StatusBoard
    rules: RuleGate
    audit: AuditPoster

    def __init__(self, settings: Settings, **options: Any) -> None:
        # The bot never joins voice: silence discord.py's voice-library warnings.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        shard_options: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            shard_options["shard_ids"] = settings.shard_ids
        intents = discord.Intents.none()
        intents.guilds = True  # no privileged intents are needed
        # discord.py counts a shard ready once no GUILD_CREATE came for this long (its
        # default, 2 s, was most of the start-up); the bot needs no member lists, and a
        # server that arrives later is simply added.
        options.setdefault("guild_ready_timeout", GUILD_READY_S)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **shard_options,
            **options,
        )
        self.settings = settings
        self._providers: dict[str, VideoProvider] = {}
        self.ready_once = False
        self.result_actions = ResultActions()
        self.metrics: Metrics = Metrics()  # no-op until setup_hook, and with METRICS_PORT unset
        self.handle_sigterm = False  # run_bot: SIGTERM stops the bot cleanly
        self._closing: asyncio.Task[None] | None = None
        # At most as many interactions read and unanswered as there are connections to
        # answer them with: the rest of a burst waits in the socket (bot/backpressure.py).
        self.interaction_gate = InteractionGate(DISCORD_CONNECTIONS)
        backpressure.install()
        keepalive.install()  # heartbeat latency timed from the send (bot/keepalive.py)
        self._received: dict[int, float] = {}  # interaction id -> when it arrived here

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        if event_name == "interaction" and args:
            self.interaction_gate.opened(args[0])
            self._received[args[0].id] = time.time()
            while len(self._received) > RECEIVED_KEPT:
                del self._received[next(iter(self._received))]
        super().dispatch(event_name, *args, **kwargs)

    def started_at(self, interaction: discord.Interaction[Any]) -> float:
        """When the member's command started, by this host's clock: the earlier of the
        interaction's snowflake time and when it was received here (a snowflake from a
        clock ahead of ours would make the first status edit wait for the skew and
        overestimate the interaction token's remaining life)."""
        received = self._received.get(interaction.id, time.time())
        return min(interaction.created_at.timestamp(), received)

    async def login(self, token: str) -> None:
        # discord.py's own connector has no limit: a burst of 1000 commands opened (and
        # kept) a connection to Discord per deferral under way. A bounded pool reuses its
        # connections: the burst is acknowledged sooner and holds less memory.
        self.http.connector = aiohttp.TCPConnector(limit=DISCORD_CONNECTIONS)
        await super().login(token)

    def provider(self, name: str) -> VideoProvider:
        if name not in self._providers:
            provider = make_provider(name, self.settings, self.session)
            self._providers[name] = self.metrics.observe(provider)
        return self._providers[name]

    @property
    def work_dir(self) -> Path:
        return self.settings.database_path.parent / "work"

    async def setup_hook(self) -> None:
        notice = retired_notice(self.settings.provider, self.settings.model)
        if notice is not None:
            log.warning("%s", notice)
        try:
            self.store = await Store.open(self.settings)
        except StoreUnavailable as exc:
            raise StartupError(str(exc)) from None
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        if self.settings.metrics_port is not None:
            self.metrics = PrometheusMetrics(
                self.store, self.settings.metrics_host, self.settings.metrics_port
            )
        self.webhook = WebhookServer(
            self.settings.webhook_host,
            self.settings.webhook_port,
            on_callback=self._on_callback,
            health=self._health,
            public_base_url=self.settings.public_base_url,
            images=StoredImages(self.store),
        )
        self.status_board = StatusBoard(self, self.store, status_embed)
        self.rules = RuleGate(self.store)
        self.audit = AuditPoster(self, self.store)
        self.audit.start()
        delivery = DiscordDelivery(
            self, embed=result_embed, view=result_view, link_text=link_text
        )
        self.jobs = JobService(
            store=self.store,
            session=self.session,
            settings=self.settings,
            providers=self.provider,
            deliver=delivery.deliver,
            on_update=self._on_job_update,
            webhook=self.webhook,
            work_dir=self.work_dir,
        )
        try:
            await self.webhook.start()
        except OSError as exc:
            raise StartupError(
                f"WEBHOOK_PORT: cannot listen on {self.settings.webhook_host}:"
                f"{self.settings.webhook_port} ({exc.strerror or exc})"
            ) from None
        try:
            await self.metrics.start()
        except OSError as exc:
            raise StartupError(
                f"METRICS_PORT: cannot listen on {self.settings.metrics_host}:"
                f"{self.settings.metrics_port} ({exc.strerror or exc})"
            ) from None
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        try:
            await self.jobs.start()
        except IdentityInUse:
            raise StartupError(identity_in_use(self.settings, self.store.dialect)) from None
        await self.sync_commands()
        if self.handle_sigterm:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self) -> None:
        """A rolling restart: stop taking work, give the job leases back, exit."""
        log.info("SIGTERM: stopping; unfinished jobs go to the other processes")
        if self._closing is None:
            self._closing = asyncio.create_task(self.close(), name="sigterm-close")

    async def _on_job_update(self, update: JobUpdate) -> None:
        """Job progress goes to the metrics, the member's status message and outcomes to
        the audit."""
        self.metrics.job_update(update)
        try:
            await self.status_board.update(update)
        finally:
            await self.audit.on_update(update)

    async def _on_callback(self, provider: str, token: str, body: bytes,
                           headers: Mapping[str, str]) -> bool:
        known = await self.jobs.handle_callback(provider, token, body, headers)
        await self.metrics.callback(provider, token, known)
        return known

    async def _health(self) -> dict[str, Any]:
        return {
            "database": await self.store.ping(),
            "discord": self.is_ready() and not self.is_closed(),
            "shards": sorted(self.shards),
            "shard_count": self.shard_count,
            "process": self.jobs.owner,
            "leases": await self.jobs.leases_held(),
        }

    def command_payload(self) -> list[dict[str, Any]]:
        return [command.to_dict(self.tree) for command in self.tree.get_commands()]

    async def sync_commands(self) -> None:
        """Guild sync at every start with DEV_GUILD_ID; else global sync on change only."""
        if self.settings.dev_guild_id:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to the development guild", len(synced))
            return
        if not self.settings.runs_shard_zero:
            log.info("global commands are synced by the process that runs shard 0")
            return
        digest = hashlib.sha256(
            json.dumps(self.command_payload(), sort_keys=True).encode()
        ).hexdigest()
        if await self.store.get_meta(SYNC_HASH_KEY) == digest:
            log.info("command definitions unchanged: no global sync")
            return
        synced = await self.tree.sync()
        await self.store.set_meta(SYNC_HASH_KEY, digest)
        log.info("synced %d commands globally", len(synced))

    async def on_ready(self) -> None:
        if not self.ready_once:
            self.ready_once = True
            log.info("logged in as %s in %d server(s)", self.user, len(self.guilds))

    async def close(self) -> None:
        if hasattr(self, "jobs"):
            await self.jobs.stop()
        if hasattr(self, "status_board"):
            await self.status_board.close()
        if hasattr(self, "audit"):
            await self.audit.close()
        if hasattr(self, "webhook"):
            await self.webhook.stop()
        await self.metrics.stop()
        await super().close()
        if hasattr(self, "session"):
            await self.session.close()
        if hasattr(self, "store"):
            await self.store.close()


def identity_in_use(settings: Settings, dialect: str) -> str:
    """The start-up refusal when a live process already runs under this identity."""
    if dialect == "sqlite":
        return (f"DATABASE_PATH: another bot process is already running on "
                f"{settings.database_path}; a SQLite file serves one process (use "
                "DATABASE_URL=postgresql://... to run several)")
    return (f"INSTANCE_ID: another running bot process already uses the identity "
            f"'{settings.process_identity}' on this database; give each process its own "
            "INSTANCE_ID (or its own SHARD_IDS)")


def point_discord_at(settings: Settings) -> None:
    """Honour DISCORD_API_BASE_URL and DISCORD_GATEWAY_URL (REST proxies, local fakes)."""
    discord.http.Route.BASE = settings.discord_api_base_url
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def run_bot(settings: Settings) -> int:
    assert settings.discord_token is not None
    point_discord_at(settings)
    bot = VideoBot(settings)
    bot.handle_sigterm = True
    try:
        bot.run(settings.discord_token.get_secret_value(), log_handler=None)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except discord.LoginFailure:
        print("error: DISCORD_TOKEN was rejected by Discord", file=sys.stderr, flush=True)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("error: the bot asked for an intent the application lacks", file=sys.stderr,
              flush=True)
        return 2
    return 0
