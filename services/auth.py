"""Who may call what: every RPC's access class, and the bearer-token check.

Each servicer declares one table, `access_table(descriptor, open_calls=..., service_calls=..., admin_calls=...)`,
naming every method of its proto service once; a method left out (a new RPC) or named twice
stops the import, so nothing is served unclassified.

- OPEN: reads, WatchTransitions; never a token (health and reflection are open too).
- SERVICE: every other state-changing call; needs `SERVICE_TOKEN` when one is set.
- ADMIN: operator overrides (force, reset, configure, re-drive); needs `ADMIN_TOKEN` when set.

The admin token also passes service checks. Tokens travel as `authorization: Bearer <token>`
and are compared in constant time.
"""

import enum
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from services import errors


class Access(enum.Enum):
    OPEN = "open"
    SERVICE = "service"
    ADMIN = "admin"


def access_table(
    service: ServiceDescriptor, *, open_calls: Iterable[str], service_calls: Iterable[str], admin_calls: Iterable[str]
) -> dict[str, Access]:
    """Full method name (`/pkg.Service/Method`) -> access, for every method of `service`."""
    classified: dict[str, Access] = {}
    for access, names in ((Access.OPEN, open_calls), (Access.SERVICE, service_calls), (Access.ADMIN, admin_calls)):
        for name in names:
            if name in classified:
                raise ValueError(f"{service.full_name}.{name} is classified twice")
            classified[name] = access
    declared = set(service.methods_by_name)
    if unknown := sorted(set(classified) - declared):
        raise ValueError(f"{service.full_name} has no methods {', '.join(unknown)}")
    if missing := sorted(declared - set(classified)):
        raise ValueError(f"{service.full_name}: classify {', '.join(missing)} as open, service or admin")
    return {f"/{service.full_name}/{name}": access for name, access in classified.items()}


@dataclass(frozen=True)
class Tokens:
    """The tokens a server accepts; None switches a check off."""

    admin: str | None = None
    service: str | None = None

    def check(self, access: Access, authorization: str) -> None:
        """Raises Unauthenticated unless `authorization` carries a token that `access` accepts."""
        accepted, variable = self._accepted(access)
        if not accepted:
            return
        scheme, _, presented = authorization.partition(" ")
        # Every accepted token is compared, so the time taken does not tell which one was close.
        matches = [hmac.compare_digest(presented.strip().encode(), token.encode()) for token in accepted]
        if scheme.lower() != "bearer" or not any(matches):
            raise errors.Unauthenticated(f"this call needs the header 'authorization: Bearer <{variable}>'")

    def _accepted(self, access: Access) -> tuple[tuple[str, ...], str]:
        if access is Access.ADMIN and self.admin:
            return (self.admin,), "ADMIN_TOKEN"
        if access is Access.SERVICE and self.service:
            return tuple(t for t in (self.service, self.admin) if t), "SERVICE_TOKEN"
        return (), ""
