"""Errors that use cases and domains raise; the server interceptor maps each to a status code.

Domain code stays free of grpc: it raises these plain exceptions, and only
`services.interceptors` knows the status code each stands for.
"""


class ServiceError(Exception):
    """Base of every error that is the caller's or the environment's, not a bug."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is malformed: a field is missing, too long, out of range."""


class NotFound(ServiceError):
    """The named resource does not exist."""


class AlreadyExists(ServiceError):
    """The resource to create exists already."""


class FailedPrecondition(ServiceError):
    """The request is valid but not allowed in the resource's current state."""


class Aborted(ServiceError):
    """A concurrent change won; the caller may retry."""


class Unavailable(ServiceError):
    """Storage or a peer service cannot be reached, or the data at hand is too stale."""


class Unauthenticated(ServiceError):
    """An admin call came without the admin token, or with a wrong one."""


class ResourceExhausted(ServiceError):
    """A limit was reached, e.g. a stream subscriber fell too far behind."""
