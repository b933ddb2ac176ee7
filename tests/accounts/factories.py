import datetime
from decimal import Decimal

import factory
from django.contrib.auth.models import Group
from djmoney.money import Money

from accounts import roles
from accounts.enums import ClientKind, InternalRating, KycStatus
from accounts.models import Client, CreditProfile, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@broker.example")
    password = factory.PostGenerationMethodCall("set_password", "pass")


class StaffFactory(UserFactory):
    is_staff = True

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        self.save()
        if extracted:
            roles.roles_sync()
            self.groups.add(Group.objects.get(name=extracted))


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    reference = factory.Sequence(lambda n: f"T{n:05d}")
    name = factory.Faker("company")
    kind = ClientKind.CORPORATION
    email = factory.LazyAttribute(lambda client: f"{client.reference.lower()}@client.example")
    kyc_status = KycStatus.APPROVED
    pi_portfolio_value = Money(Decimal("20000000.00"), "HKD")
    pi_total_assets = Money(Decimal("60000000.00"), "HKD")
    pi_assessed_on = factory.LazyFunction(lambda: datetime.date.today() - datetime.timedelta(days=30))
    pi_expires_on = factory.LazyAttribute(lambda client: client.pi_assessed_on + datetime.timedelta(days=365))


class CreditProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditProfile

    client = factory.SubFactory(ClientFactory)
    internal_rating = InternalRating.A
    credit_limit = Money(Decimal("10000000.00"), "HKD")
    next_review_on = factory.LazyFunction(lambda: datetime.date.today() + datetime.timedelta(days=180))
