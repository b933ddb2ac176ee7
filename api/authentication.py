"""Who is calling: an API key (``Authorization: Bearer mfk_…``) or a logged-in user (session)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from accounts.second_factor import needs_second_factor
from api.models import ApiKey
from api.selectors import api_key_find
from api.services import api_key_record_use


class ApiKeyUser:
    """What ``request.user`` is for a request made with an API key: a system, not a person. It holds no
    Django permissions; what it may do is the key's scopes."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    client_id = None
    is_client_user = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def __str__(self) -> str:
        return self.api_key.audit_label

    def get_username(self) -> str:
        return self.api_key.audit_label

    def has_perm(self, perm, obj=None) -> bool:
        return False


class SecondFactorRequired(exceptions.PermissionDenied):
    default_detail = (
        "Staff use the API with a session only after signing in with their second factor: "
        "verify it at /admin/second-factor/ first."
    )
    default_code = "second_factor_required"


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """Django's session login, refused for a member of staff who has not verified their second factor."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and needs_second_factor(result[0]) and not result[0].is_verified():
            raise SecondFactorRequired()
        return result


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the key as `Authorization: Bearer <key>`, with nothing else in the header.",
                code="malformed_authorization",
            )
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raw_key = ""
        api_key = api_key_find(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid.", code="invalid_api_key")
        if not api_key.is_active:
            raise exceptions.AuthenticationFailed(
                f"The API key {api_key.prefix}… ({api_key.name}) was revoked.", code="api_key_revoked"
            )
        api_key_record_use(api_key=api_key)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the access rules and the services need it."""

    api_key: ApiKey | None
    user: object | None

    @property
    def actor(self):
        """What services record as the actor: the API key itself, or the user."""
        return self.api_key if self.api_key is not None else self.user

    @property
    def credential(self) -> str:
        return f"api-key:{self.api_key.pk}" if self.api_key is not None else f"user:{self.user.pk}"

    @property
    def client_id(self) -> int | None:
        return None if self.api_key is not None else getattr(self.user, "client_id", None)

    @property
    def is_client_user(self) -> bool:
        return self.client_id is not None

    @property
    def is_staff(self) -> bool:
        return self.api_key is None and bool(getattr(self.user, "is_staff", False))


def caller_of(request) -> Caller | None:
    if isinstance(request.auth, ApiKey):
        return Caller(api_key=request.auth, user=None)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active:
        return Caller(api_key=None, user=user)
    return None
