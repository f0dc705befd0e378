"""Finding the peers of one workspace on the LAN by mDNS / DNS-SD (zeroconf).

Each node registers ``<peer id>._worksync._tcp.local.`` with a TXT record of
``v=1`` (protocol version), ``id=<peer id>`` and ``ws=<workspace tag>``, and
browses the same type. A service with our tag and another peer id is reported
through ``on_found(peer_id, host, port)``; services of other workspaces are
ignored, and malformed ones are ignored with a debug line. The TXT record is
a hint, not a proof: the handshake checks who the peer is and that it holds
the workspace secret.

Registration skips probing (``cooperating_responders=True``): the instance
name is our peer id, derived from our own key, so nobody else should claim
it, and probing would cost about a second per start.

mDNS notices a peer that vanished without a goodbye only after its records
expire (18 minutes and more); liveness is the connection's heartbeat's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_worksync._tcp.local."
PROTOCOL_VERSION = "1"
RESOLVE_TIMEOUT_MS = 3000
STOP_TIMEOUT_S = 2.0
GOODBYE_TIMEOUT_S = 1.5

FoundCallback = Callable[[str, str, int], None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def txt_record(peer_id: str, workspace_tag: str) -> dict[str, str]:
    return {"v": PROTOCOL_VERSION, "id": peer_id, "ws": workspace_tag}


@dataclass(frozen=True)
class Advert:
    """What a peer's TXT record says."""

    peer_id: str
    workspace_tag: str


def parse_txt(properties: Mapping[bytes, bytes | None], instance: str) -> Advert | str:
    """The advert in a TXT record, or why it is malformed.

    ``instance`` is the service's instance label, which must equal the peer id.
    """
    values: dict[str, str] = {}
    for key in (b"v", b"id", b"ws"):
        raw = properties.get(key)
        if not raw:
            return f"no {key.decode()}="
        try:
            values[key.decode()] = raw.decode("ascii")
        except UnicodeDecodeError:
            return f"{key.decode()}= is not ASCII"
    if values["v"] != PROTOCOL_VERSION:
        return f"protocol version {values['v']!r}, not {PROTOCOL_VERSION}"
    if values["id"] != instance:
        return f"id={values['id']!r} differs from the instance name {instance!r}"
    return Advert(values["id"], values["ws"])


def pick_host(addresses: Sequence[str], networks: Collection[Network]) -> str | None:
    """The address to dial: an IPv4 address on one of our networks, else any IPv4 one.

    IPv6 addresses are not used: the listener and ``Peering.dial`` speak IPv4 for now.
    """
    v4 = [a for a in addresses if _is_ipv4(a)]
    for address in v4:
        ip = ipaddress.ip_address(address)
        if any(ip in network for network in networks):
            return address
    return v4[0] if v4 else None


def _is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


@dataclass(frozen=True)
class _Interfaces:
    """Our interfaces as zeroconf wants them, the addresses to advertise, our networks."""

    choice: list[str | int] | None
    addresses: list[str]
    networks: list[Network]


def _resolve_interfaces(interfaces: Sequence[str] | None) -> _Interfaces:
    """Turn IPs and interface names into zeroconf's ``interfaces=`` list.

    zeroconf takes IPv4 addresses, IPv6 addresses and IPv6 interface indexes,
    not names: a name becomes its IPv4 addresses, or its index when it has none.
    Blocking (getifaddrs): call it off the event loop.
    """
    adapters = ifaddr.get_adapters()
    ips: list[tuple[str, Network, str]] = []  # (address, network, adapter name)
    for adapter in adapters:
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            network = ipaddress.ip_network(f"{address}/{ip.network_prefix}", strict=False)
            ips.append((address, network, adapter.name))
    if interfaces is None:
        chosen = [
            (a, n) for a, n, _ in ips if n.version == 4 and not ipaddress.ip_address(a).is_loopback
        ]
        return _Interfaces(None, [a for a, _ in chosen], [n for _, n in chosen])
    choice: list[str | int] = []
    addresses: list[str] = []
    networks: list[Network] = []
    for entry in interfaces:
        if _is_ip(entry):
            choice.append(entry)
            addresses.append(entry)
            networks += [n for a, n, _ in ips if a == entry]
            continue
        by_name = [(a, n) for a, n, name in ips if name == entry and n.version == 4]
        named = next((a for a in adapters if a.name == entry), None)
        if named is None:
            raise ValueError(f"no network interface named {entry!r}")
        if by_name:
            choice += [a for a, _ in by_name]
            addresses += [a for a, _ in by_name]
            networks += [n for _, n in by_name]
        elif named.index is not None:
            choice.append(named.index)
        else:
            raise ValueError(f"network interface {entry!r} has no usable address")
    return _Interfaces(choice, addresses, networks)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Discovery:
    """Announce this peer and report the other peers of its workspace.

    ``on_found`` runs on the event loop, once per peer and (host, port); a peer
    that comes back on another address or port is reported again.
    """

    def __init__(self, on_found: FoundCallback) -> None:
        self.on_found = on_found
        self.peer_id = ""
        self.workspace_tag = ""
        self.advertised: list[str] = []
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._networks: list[Network] = []
        self._reported: dict[str, tuple[str, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        peer_id: str,
        port: int,
        workspace_tag: str,
        interfaces: list[str] | None = None,
        *,
        addresses: list[str] | None = None,
    ) -> None:
        """Register our service and start browsing.

        ``interfaces``: None for every interface (zeroconf's default, IPv4),
        else IP addresses and/or interface names. ``addresses`` to advertise
        default to those of the chosen interfaces (all non-loopback IPv4 ones
        for None). Raises OSError when the multicast sockets cannot be opened
        and ValueError for an unknown interface.
        """
        if self._aiozc is not None:
            raise RuntimeError("discovery already started")
        self.peer_id, self.workspace_tag = peer_id, workspace_tag
        chosen = await asyncio.to_thread(_resolve_interfaces, interfaces)
        self._networks = chosen.networks
        self.advertised = list(addresses) if addresses else chosen.addresses
        if chosen.choice is None:
            aiozc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        else:
            aiozc = AsyncZeroconf(interfaces=chosen.choice)
        self._aiozc = aiozc
        try:
            await self._register(aiozc.zeroconf, port)
            self._browser = AsyncServiceBrowser(
                aiozc.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
            )
        except BaseException:
            await self.stop()
            raise

    async def _register(self, zc: Zeroconf, port: int) -> None:
        if not self.advertised:
            log.warning("mDNS: no address to advertise; browsing only")
            return
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.peer_id}.{SERVICE_TYPE}",
            port=port,
            properties=txt_record(self.peer_id, self.workspace_tag),
            server=f"{self.peer_id}.local.",
            parsed_addresses=self.advertised,
        )
        announcing = await zc.async_register_service(info, cooperating_responders=True)
        self._info = info
        self._track(announcing)

    def _track(self, awaitable: Awaitable[object]) -> None:
        async def wait() -> None:
            await awaitable

        task = asyncio.ensure_future(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            return
        self._track(self._resolve(zeroconf, service_type, name))

    async def _resolve(self, zc: Zeroconf, service_type: str, name: str) -> None:
        instance = name.removesuffix("." + service_type)
        if instance == self.peer_id:
            return
        info = AsyncServiceInfo(service_type, name)
        if not info.load_from_cache(zc) and not await info.async_request(zc, RESOLVE_TIMEOUT_MS):
            log.debug("mDNS: %s did not resolve", name)
            return
        advert = parse_txt(info.properties, instance)
        if isinstance(advert, str):
            log.debug("mDNS: ignoring %s: %s", name, advert)
            return
        if advert.workspace_tag != self.workspace_tag or advert.peer_id == self.peer_id:
            return
        host = pick_host(info.parsed_addresses(), self._networks)
        if host is None or not info.port:
            log.debug("mDNS: ignoring %s: no IPv4 address or port", name)
            return
        if self._reported.get(advert.peer_id) == (host, info.port):
            return
        self._reported[advert.peer_id] = (host, info.port)
        log.debug("mDNS: found peer %s at %s:%d", advert.peer_id, host, info.port)
        try:
            self.on_found(advert.peer_id, host, info.port)
        except Exception:
            log.exception("mDNS: on_found failed for %s", advert.peer_id)

    async def stop(self) -> None:
        """Say goodbye and close the sockets (bounded by ``STOP_TIMEOUT_S``)."""
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is None:
            return
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.gather(*tasks, return_exceptions=True)
                if self._browser is not None:
                    await self._browser.async_cancel()
                if self._info is not None:
                    with contextlib.suppress(TimeoutError):
                        goodbye = await aiozc.async_unregister_service(self._info)
                        await asyncio.wait_for(goodbye, GOODBYE_TIMEOUT_S)
                await aiozc.async_close()
        except TimeoutError:
            log.warning("mDNS: shutdown took over %.1f s; closing anyway", STOP_TIMEOUT_S)
            aiozc.zeroconf.close()
        finally:
            self._browser = None
            self._info = None
