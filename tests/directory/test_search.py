"""Directory search: the service and its REST API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from chat.errors import RelaisError
from chat.services.devices import do_issue_device_token
from directory.models import Activity, MailboxAddress, Practitioner
from directory.services.search import SearchQuery, search_practitioners

pytestmark = pytest.mark.django_db(transaction=True)


def add(
    national_id: str,
    first: str,
    last: str,
    *,
    profession: str = "10",
    specialty: str = "",
    postcode: str = "69003",
    town: str = "Lyon",
    active: bool = True,
) -> Practitioner:
    practitioner = Practitioner(
        national_id=national_id,
        first_name=first,
        last_name=last,
        profession_code=profession,
        specialty_code=specialty,
        postcode=postcode,
        town=town,
        is_active=active,
    )
    practitioner.save()
    Activity(
        practitioner=practitioner,
        activity_hash=national_id,
        profession_code=profession,
        postcode=postcode,
        town=town,
    ).save()
    return practitioner


@pytest.fixture
def people():
    return {
        "durand": add("810001987659", "Paul", "Durand", specialty="SM26"),
        "duroc": add(
            "810100000009",
            "Hélène",
            "Dûroc",
            profession="60",
            postcode="69100",
            town="Villeurbanne",
        ),
        "lefevre": add(
            "810004123450",
            "Élodie",
            "Lefèvre",
            profession="70",
            postcode="75009",
            town="Paris 9e Arrondissement",
        ),
        "gone": add("810200000008", "Paul", "Dupuis", active=False),
        "stetienne": add(
            "810300000007", "Zoë", "Martin", profession="60", postcode="42000", town="Saint-Étienne"
        ),
    }


def ids(query: SearchQuery) -> list[str]:
    return [p.last_name for p in search_practitioners(query=query).results]


def test_names_match_by_prefix_without_accents_or_case(people):
    assert ids(SearchQuery(name="DUR")) == ["Dûroc", "Durand"] or ids(SearchQuery(name="DUR")) == [
        "Durand",
        "Dûroc",
    ]
    assert ids(SearchQuery(name="duroc")) == ["Dûroc"]
    assert ids(SearchQuery(name="lefevre e")) == ["Lefèvre"]
    assert ids(SearchQuery(name="elodie")) == ["Lefèvre"]  # first name first
    assert ids(SearchQuery(name="helene dur")) == ["Dûroc"]
    assert ids(SearchQuery(name="paul")) == ["Durand"]  # the inactive Paul is hidden


def test_results_are_sorted_by_name(people):
    assert ids(SearchQuery(name="d")) == ["Durand", "Dûroc"]  # "durand paul" < "duroc helene"


def test_profession_specialty_postcode_town_and_mailbox_filters(people):
    assert ids(SearchQuery(profession_code="60")) == ["Dûroc", "Martin"]
    assert ids(SearchQuery(specialty_code="SM26")) == ["Durand"]
    assert ids(SearchQuery(postcode="69")) == ["Durand", "Dûroc"]
    assert ids(SearchQuery(postcode="75009")) == ["Lefèvre"]
    assert ids(SearchQuery(town="saint etienne")) == ["Martin"]
    assert ids(SearchQuery(town="VILLEUR", profession_code="60")) == ["Dûroc"]
    assert ids(SearchQuery(town="villeurbanne", profession_code="10")) == []
    MailboxAddress.objects.create(
        address="paul.durand@medecin.mssante.fr", kind="PER", national_id="810001987659"
    )
    assert ids(SearchQuery(mssante_address="Paul.Durand@medecin.mssante.fr")) == ["Durand"]


def test_pages_follow_a_cursor(people):
    first = search_practitioners(query=SearchQuery(postcode="", profession_code="60", limit=1))
    assert [p.last_name for p in first.results] == ["Dûroc"]
    assert first.next_cursor
    second = search_practitioners(
        query=SearchQuery(profession_code="60", limit=1, cursor=first.next_cursor)
    )
    assert [p.last_name for p in second.results] == ["Martin"]
    assert second.next_cursor is None


def test_a_search_needs_a_criterion_and_a_sane_cursor(people):
    with pytest.raises(RelaisError, match="at least one search criterion"):
        search_practitioners(query=SearchQuery(name="  '- "))
    with pytest.raises(RelaisError, match="cursor is malformed"):
        search_practitioners(query=SearchQuery(name="dur", cursor="!!!"))


def test_the_rest_api_searches_and_shows_details(people):
    client = APIClient()
    assert client.get("/api/v1/directory/practitioners", {"q": "dur"}).status_code == 401
    _device, token = do_issue_device_token(practitioner=people["durand"], device_name="t")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    page = client.get("/api/v1/directory/practitioners", {"q": "dur", "limit": "1"}).json()
    assert [r["last_name"] for r in page["results"]] == ["Durand"]
    nxt = client.get("/api/v1/directory/practitioners", {"q": "dur", "cursor": page["next"]})
    assert [r["last_name"] for r in nxt.json()["results"]] == ["Dûroc"]
    bad = client.get("/api/v1/directory/practitioners", {"postcode": "69A"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_request"
    assert bad.json()["error"]["message_fr"]
    empty = client.get("/api/v1/directory/practitioners")
    assert empty.json()["error"]["message"].endswith("Give at least one search criterion.")
    detail = client.get("/api/v1/directory/practitioners/810100000009").json()
    assert (detail["first_name"], detail["activities"][0]["town"]) == ("Hélène", "Villeurbanne")
    gone = client.get("/api/v1/directory/practitioners/810200000008")
    assert gone.status_code == 404


def test_a_number_finds_its_practitioner(people):
    """Professionals look each other up by RPPS or ADELI number every day."""
    adeli = add("0759124159", "Inès", "Orthophoniste", profession="91")
    for number in ("10100000009", "810100000009", " 10100000009 "):
        assert ids(SearchQuery(name=number)) == ["Dûroc"]
    assert ids(SearchQuery(name="759124159")) == [adeli.last_name]
    assert ids(SearchQuery(name="0759124159")) == [adeli.last_name]
    # The other criteria still apply; an inactive one is not found; digits are ASCII.
    assert ids(SearchQuery(name="10100000009", profession_code="10")) == []
    assert ids(SearchQuery(name="10100000009", postcode="691")) == ["Dûroc"]
    assert ids(SearchQuery(name="10200000008")) == []
    assert ids(SearchQuery(name="\uff11" + "0100000009")) == []
    client = APIClient()
    _device, token = do_issue_device_token(practitioner=people["durand"], device_name="t")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    found = client.get("/api/v1/directory/practitioners", {"q": "10100000009"}).json()
    assert [r["national_id"] for r in found["results"]] == ["810100000009"]
    for path in ("10100000009", "810100000009"):
        detail = client.get(f"/api/v1/directory/practitioners/{path}")
        assert detail.json()["national_id"] == "810100000009"
    assert client.get("/api/v1/directory/practitioners/759124159").json()["last_name"] == (
        "Orthophoniste"
    )
    assert client.get("/api/v1/directory/practitioners/10200000008").status_code == 404


def test_first_name_and_last_name_matches_merge_in_order_without_duplicates(transactional_db):
    add("810400000006", "Paul", "Martin")  # "martin paul" / "paul martin"
    add("810500000005", "Marie", "Zola")  # "zola marie" / "marie zola"
    add("810600000004", "Marcel", "Marc")  # matches both ways: listed once
    assert ids(SearchQuery(name="mar")) == ["Marc", "Zola", "Martin"]
    seen, cursor = [], ""
    while True:
        page = search_practitioners(query=SearchQuery(name="mar", limit=1, cursor=cursor))
        seen += [p.last_name for p in page.results]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["Marc", "Zola", "Martin"]


def all_pages(query: SearchQuery) -> list[str]:
    """Every result of a search, following the cursor (pages may be short)."""
    seen: list[str] = []
    cursor = ""
    for _ in range(100):
        page = search_practitioners(
            query=SearchQuery(**{**query.__dict__, "cursor": cursor, "limit": 2})
        )
        seen += [p.national_id for p in page.results]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the cursor never ended")


@pytest.fixture
def town(transactional_db):
    people = []
    for index, (first, last) in enumerate(
        [("Anne", "Abel"), ("Marc", "Bon"), ("Zoé", "Carré"), ("Luc", "Dax"), ("Éva", "Ern")]
    ):
        national_id = f"8{index + 1:010d}0"
        people.append(add(national_id, first, last, postcode="69003", town="Lyon",
                          profession="60" if index % 2 else "10"))  # fmt: skip
    # a second activity at the same place: still listed once
    Activity(practitioner=people[1], activity_hash="second", profession_code="60",
             postcode="69003", town="Lyon").save()  # fmt: skip
    add("81000000099", "Anne", "Autre", postcode="75009", town="Paris")
    return people


@pytest.mark.parametrize("mode", ["moderate place", "dense place", "dense, short walks"])
@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(postcode="69003"),
        SearchQuery(postcode="69", profession_code="60"),
        SearchQuery(town="lyo"),
        SearchQuery(town="lyon", name="ma"),
    ],
)
def test_place_searches_give_the_same_pages_whatever_the_strategy(town, monkeypatch, mode, query):
    import directory.services.search as search

    if mode != "moderate place":
        monkeypatch.setattr(search, "PLACE_SORT_LIMIT", 0)
    if mode == "dense, short walks":
        monkeypatch.setattr(search, "DENSE_WALK_CHUNK", 1)
        monkeypatch.setattr(search, "DENSE_WALK_CHUNKS", 1)
    expected = {
        "69003": ["Abel", "Bon", "Carré", "Dax", "Ern"],
        "69": ["Bon", "Dax"],
        "lyo": ["Abel", "Bon", "Carré", "Dax", "Ern"],
        "lyon": ["Bon"],  # "marc bon": found by first name, listed once
    }[query.postcode or query.town]
    names = dict(Practitioner.objects.values_list("national_id", "last_name"))
    assert [names[i] for i in all_pages(query)] == expected
