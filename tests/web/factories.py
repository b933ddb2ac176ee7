import factory

from tests.accounts.factories import ClientFactory, StaffFactory, UserFactory


class SignInUserFactory(UserFactory):
    """A user who can sign in with the password "pass" (saved after the password is set)."""

    @factory.post_generation
    def saved(self, create, extracted, **kwargs):
        if create:
            self.save()


class ClientUserFactory(SignInUserFactory):
    client = factory.SubFactory(ClientFactory)


__all__ = ["ClientUserFactory", "SignInUserFactory", "StaffFactory"]
