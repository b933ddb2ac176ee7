"""The shared pages over Django's test client: where `/` sends each person, sign-in and sign-out, the
language cookie and the content security policy."""

import pytest
from django.urls import reverse

from tests.helpers import login_as
from tests.web.factories import ClientUserFactory, SignInUserFactory, StaffFactory

pytestmark = pytest.mark.django_db


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_anyone_not_signed_in_is_sent_to_sign_in_and_then_back_home(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/sign-in/?next=/"


def test_a_client_user_goes_to_the_client_home_and_staff_to_the_staff_home(client, settings):
    login_as(client, ClientUserFactory())
    assert client.get("/")["Location"] == "/portal/"
    login_as(client, StaffFactory())
    assert client.get("/")["Location"] == "/console/"


def test_the_homes_are_one_setting_each_a_url_name_or_a_path(client, settings):
    settings.WEB_CLIENT_HOME = "/somewhere/for/clients/"
    settings.WEB_STAFF_HOME = "web:sign_in"
    login_as(client, ClientUserFactory())
    assert client.get("/")["Location"] == "/somewhere/for/clients/"
    login_as(client, StaffFactory())
    assert client.get("/")["Location"] == reverse("web:sign_in")


def test_a_user_neither_client_nor_staff_is_told_so(client):
    login_as(client, SignInUserFactory(username="orphan"))
    response = client.get("/")
    assert response.status_code == 403
    assert "You are signed in as orphan" in response.content.decode()


def test_home_answers_only_safe_methods(client):
    assert client.post("/").status_code == 405


def test_sign_in_then_home_by_role(client):
    ClientUserFactory(username="c1")
    response = client.post("/sign-in/", {"username": "c1", "password": "pass", "next": "/"})
    assert response["Location"] == "/"
    assert client.get("/")["Location"] == "/portal/"


def test_a_wrong_password_signs_nobody_in(client):
    ClientUserFactory(username="c1")
    response = client.post("/sign-in/", {"username": "c1", "password": "wrong", "next": "/"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_refuses_a_next_on_another_site(client):
    ClientUserFactory(username="c1")
    response = client.post(
        "/sign-in/", {"username": "c1", "password": "pass", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"  # LOGIN_REDIRECT_URL, not the other site


def test_sign_out_is_a_post_with_a_csrf_token(client):
    login_as(client, StaffFactory())
    assert client.get("/sign-out/").status_code == 405
    assert "_auth_user_id" in client.session
    csrf_client = type(client)(enforce_csrf_checks=True)
    login_as(csrf_client, StaffFactory())
    assert csrf_client.post("/sign-out/").status_code == 403  # no token
    response = client.post("/sign-out/")
    assert response["Location"] == "/sign-in/"
    assert "_auth_user_id" not in client.session


def test_the_language_choice_is_kept_in_a_cookie_for_a_year(client):
    response = client.post("/i18n/setlang/", {"language": "zh-hant", "next": "/sign-in/"})
    assert response["Location"] == "/sign-in/"
    cookie = response.cookies["django_language"]
    assert cookie.value == "zh-hant"
    assert int(cookie["max-age"]) == 365 * 24 * 3600
    page = client.get("/sign-in/").content.decode()
    assert '<html lang="zh-Hant">' in page
    assert "保證金融資" in page
    assert 'aria-pressed="true">繁體中文</button>' in page


def test_a_browser_asking_for_hong_kong_chinese_gets_traditional_chinese(client):
    page = client.get("/sign-in/", headers={"accept-language": "zh-HK,zh;q=0.9,en;q=0.5"}).content.decode()
    assert '<html lang="zh-Hant">' in page
    english = client.get("/sign-in/", headers={"accept-language": "en-US"}).content.decode()
    assert '<html lang="en-GB">' in english


def test_every_page_carries_the_content_security_policy(client):
    assert directives(client.get("/sign-in/")["Content-Security-Policy"]) == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    assert "Content-Security-Policy" in client.get("/")


def test_favicon_ico_leads_to_the_shipped_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"


def test_the_admin_may_use_inline_styles_but_no_inline_scripts(client):
    login_as(client, StaffFactory())
    admin = directives(client.get("/admin/")["Content-Security-Policy"])
    assert admin["style-src"] == "'self' 'unsafe-inline'"
    assert admin["script-src"] == "'self'"
    assert directives(client.get("/sign-in/")["Content-Security-Policy"])["style-src"] == "'self'"
