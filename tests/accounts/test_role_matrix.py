"""Every role against every action of the matrix (tests/accounts/role_matrix.py): the admin's own permission
checks, the approval kinds' permissions, and the API called with a session of that role; and the matrix lists
every action the platform has, and the doc shows the matrix as it is."""

import pytest
from django.contrib import admin
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts import roles
from accounts.approvals import approval_kind_get, approval_kinds
from config.api_urls import router
from console.actions import CONSOLE_ACTIONS
from tests.accounts import role_matrix
from tests.accounts.factories import StaffFactory
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def request_factory():
    return RequestFactory()


def admin_request(user):
    request = RequestFactory().get("/admin/")
    user.is_verified = lambda: True
    request.user = user
    return request


def model_admin(label: str) -> admin.ModelAdmin:
    app_label, model_name = label.split(".")
    return next(
        model_admin
        for model, model_admin in admin.site._registry.items()
        if (model._meta.app_label, model._meta.model_name) == (app_label, model_name)
    )


def allowed_in_admin(user, key: str) -> bool:
    label, what = key.split(":")
    request, ma = admin_request(user), model_admin(label)
    if what in ("add", "change", "delete"):
        return getattr(ma, f"has_{what}_permission")(request)
    return what in ma.get_actions(request)


def allowed_approval(user, key: str) -> bool:
    step, kind_key = key.split(":")
    kind = approval_kind_get(kind_key)
    return user.has_perm(kind.request_permission if step == "ask" else kind.approve_permission)


CELLS = [
    pytest.param(section, item, role, id=f"{item.key} | {role}")
    for section, rows in (
        ("admin", role_matrix.ADMIN),
        ("approvals", role_matrix.APPROVALS),
        ("console", role_matrix.CONSOLE),
    )
    for item in rows
    for role in role_matrix.ROLES
]


@pytest.mark.parametrize(("section", "item", "role"), CELLS)
def test_the_admin_and_the_approvals_follow_the_matrix(section, item, role):
    user = StaffFactory(role=role)
    if section == "console":
        allowed = user.has_perm(CONSOLE_ACTIONS[item.key.split(":")[1]])
    else:
        allowed = allowed_in_admin(user, item.key) if section == "admin" else allowed_approval(user, item.key)
    assert allowed == (role in item.may), f"{role} {'may' if allowed else 'may not'} {item.key}"


@pytest.mark.parametrize(
    ("item", "role"),
    [
        pytest.param(item, role, id=f"{item.key} | {role}")
        for item in role_matrix.API
        for role in role_matrix.ROLES
    ],
)
def test_the_api_follows_the_matrix(item, role):
    method, path = item.key.split(" ")
    api = APIClient()
    login_as(api, StaffFactory(role=role))
    response = getattr(api, method.lower())(path.replace("{id}", "999999"), {}, format="json")
    if role in item.may:
        assert response.status_code != 403, response.json()  # refused later, for the empty body or the record
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "permission_denied"


def test_the_matrix_names_every_role():
    assert list(roles.ROLES) == role_matrix.ROLES


def test_the_matrix_lists_every_admin_page_and_action_there_is():
    superuser = StaffFactory(is_superuser=True)
    request = admin_request(superuser)
    existing = set()
    for model, ma in admin.site._registry.items():
        label = model._meta.label_lower
        existing |= {
            f"{label}:{op}"
            for op in ("add", "change", "delete")
            if getattr(ma, f"has_{op}_permission")(request)
        }
        existing |= {f"{label}:{name}" for name in ma.get_actions(request) if name != "delete_selected"}
    assert existing == {item.key for item in role_matrix.ADMIN}


def test_the_matrix_lists_every_approval_kind():
    kinds = {kind.key for kind in approval_kinds()}
    assert {item.key for item in role_matrix.APPROVALS} == {
        f"{step}:{kind}" for kind in kinds for step in ("ask", "decide")
    }


def test_the_matrix_lists_every_api_write():
    methods = {"create": "POST", "partial_update": "PATCH"}
    existing = set()
    for prefix, viewset, _ in router.registry:
        for action in viewset.write_rules:
            if action in methods:
                path = f"/api/v1/{prefix}/" if action == "create" else f"/api/v1/{prefix}/{{id}}/"
                existing.add(f"{methods[action]} {path}")
            else:
                url_path = getattr(viewset, action).url_path
                existing.add(f"POST /api/v1/{prefix}/{{id}}/{url_path}/")
    assert existing == {item.key for item in role_matrix.API}


def test_the_doc_shows_the_matrix_as_it_is():
    text = role_matrix.DOC.read_text()
    assert role_matrix.render() in text, (
        "docs/roles.md is out of date: python -m tests.accounts.role_matrix --write"
    )


def test_the_matrix_lists_every_console_action():
    assert {item.key for item in role_matrix.CONSOLE} == {f"console:{key}" for key in CONSOLE_ACTIONS}
