"""Hashing, generating and protecting secrets; sealing them for the notifier."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from billing_contracts.catalog.identity import PasswordIssued, PasswordPurpose
from billing_events.sealing import SealingError, generate_keypair, seal, unseal
from identity.domain import (
    CODE_POLICY,
    PASSWORD_POLICY,
    SUPPORT_THROTTLE,
    UNAMBIGUOUS_ALPHABET,
    Attempt,
    LookupKind,
    PasswordPolicy,
    ThrottleState,
    guarded_attempt,
    mask_phone,
    validate_recovery_claim,
    validate_registration,
)
from identity.security import (
    FAST_TEST_HASHING,
    CorruptSecretHash,
    HashingProfile,
    PersonalDataVault,
    SecretHasher,
    UnreadablePersonalData,
    constant_time_equal,
    generate_code,
    generate_password,
    new_key,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def hasher() -> SecretHasher:
    return SecretHasher(FAST_TEST_HASHING)


@pytest.fixture(scope="module")
def vault() -> PersonalDataVault:
    return PersonalDataVault.from_base64(lookup_key=new_key(), encryption_key=new_key())


# --- slow hashes of passwords and codes ---------------------------------------------------------


def test_a_password_hash_is_argon2id_and_verifies_only_the_password(hasher: SecretHasher) -> None:
    stored = hasher.hash("Ab3defGhJk7m")

    assert stored.startswith("$argon2id$")
    assert "Ab3defGhJk7m" not in stored
    assert hasher.verify(stored, "Ab3defGhJk7m")
    assert not hasher.verify(stored, "Ab3defGhJk7n")
    assert not hasher.verify(stored, "")


def test_hashes_are_salted(hasher: SecretHasher) -> None:
    assert hasher.hash("123456") != hasher.hash("123456")


def test_the_profile_sets_the_cost(hasher: SecretHasher) -> None:
    assert "m=8,t=1,p=1" in hasher.hash("123456")


def test_a_hash_made_with_other_parameters_still_verifies_and_asks_for_rehash(
    hasher: SecretHasher,
) -> None:
    stronger = SecretHasher(HashingProfile(time_cost=2, memory_cost_kib=64, parallelism=1))
    stored = stronger.hash("123456")

    assert hasher.verify(stored, "123456")
    assert hasher.needs_rehash(stored)
    assert not stronger.needs_rehash(stored)


def test_a_corrupt_stored_hash_is_an_error_not_a_mismatch(hasher: SecretHasher) -> None:
    with pytest.raises(CorruptSecretHash):
        hasher.verify("not a hash", "123456")


def test_constant_time_equal_compares_whole_strings() -> None:
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")
    assert not constant_time_equal("abc", "abcd")


# --- generation ---------------------------------------------------------------------------------


def test_generated_passwords_follow_the_policy_and_do_not_repeat() -> None:
    passwords = [generate_password(PASSWORD_POLICY) for _ in range(300)]

    assert all(PASSWORD_POLICY.admits(password) for password in passwords)
    assert set("".join(passwords)) <= set(UNAMBIGUOUS_ALPHABET)
    assert len(set(passwords)) == len(passwords)


def test_a_longer_policy_gives_longer_passwords() -> None:
    policy = PasswordPolicy(length=20)

    assert len(generate_password(policy)) == 20


def test_generated_codes_are_six_digits_and_vary() -> None:
    codes = [generate_code(CODE_POLICY) for _ in range(300)]

    assert all(CODE_POLICY.admits(code) for code in codes)
    assert len(set(codes)) > 250


# --- personal data at rest ----------------------------------------------------------------------


def test_a_lookup_hash_is_stable_and_reveals_nothing(vault: PersonalDataVault) -> None:
    first = vault.lookup_hash(LookupKind.PASSPORT, "4508731942")

    assert first == vault.lookup_hash(LookupKind.PASSPORT, "4508731942")
    assert first != vault.lookup_hash(LookupKind.PASSPORT, "4508731943")
    assert len(first) == 64 and "731942" not in first


def test_each_kind_of_data_hashes_apart(vault: PersonalDataVault) -> None:
    hashes = {vault.lookup_hash(kind, "79123456789") for kind in LookupKind}

    assert len(hashes) == len(LookupKind)


def test_lookup_hashes_depend_on_the_key(vault: PersonalDataVault) -> None:
    other = PersonalDataVault.from_base64(lookup_key=new_key(), encryption_key=new_key())

    assert vault.lookup_hash(LookupKind.PHONE, "+79123456789") != other.lookup_hash(
        LookupKind.PHONE, "+79123456789"
    )


def test_matches_compares_a_stored_lookup_hash(vault: PersonalDataVault) -> None:
    stored = vault.lookup_hash(LookupKind.EMAIL, "ivan@mail.ru")

    assert vault.matches(stored, LookupKind.EMAIL, "ivan@mail.ru")
    assert not vault.matches(stored, LookupKind.EMAIL, "ivan@mail.com")
    assert not vault.matches(stored, LookupKind.PHONE, "ivan@mail.ru")


def test_encrypted_personal_data_round_trips_and_hides_the_text(vault: PersonalDataVault) -> None:
    document = json.dumps({"series": "4508", "number": "731942", "authority": "ОВД Арбат"})

    first = vault.encrypt(document, bound_to="100000000008/passport")
    second = vault.encrypt(document, bound_to="100000000008/passport")

    assert vault.decrypt(first, bound_to="100000000008/passport") == document
    assert first != second  # a fresh nonce each time
    for token in (first, second):
        key_id, _, body = token.partition(":")
        assert key_id == vault.current_key_id  # the record names the key that wrote it
        assert "731942" not in token
        assert b"731942" not in base64.b64decode(body)


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(vault: PersonalDataVault) -> None:
    token = vault.encrypt("+79123456789", bound_to="100000000008/phone")

    with pytest.raises(UnreadablePersonalData):
        vault.decrypt(token, bound_to="100000000016/phone")


def test_a_tampered_ciphertext_does_not_decrypt(vault: PersonalDataVault) -> None:
    key_id, _, body = vault.encrypt("+79123456789", bound_to="x").partition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1

    with pytest.raises(UnreadablePersonalData):
        vault.decrypt(f"{key_id}:{base64.b64encode(bytes(raw)).decode()}", bound_to="x")


@pytest.mark.parametrize("token", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_garbage_does_not_decrypt(vault: PersonalDataVault, token: str) -> None:
    with pytest.raises(UnreadablePersonalData):
        vault.decrypt(token, bound_to="x")


def test_another_key_cannot_decrypt(vault: PersonalDataVault) -> None:
    other = PersonalDataVault.from_base64(lookup_key=new_key(), encryption_key=new_key())

    with pytest.raises(UnreadablePersonalData):
        other.decrypt(vault.encrypt("secret", bound_to="x"), bound_to="x")


@pytest.mark.parametrize(("lookup", "encryption"), [(b"k" * 16, b"e" * 32), (b"k" * 32, b"e" * 16)])
def test_short_keys_are_refused(lookup: bytes, encryption: bytes) -> None:
    with pytest.raises(ValueError, match="key"):
        PersonalDataVault(lookup_key=lookup, encryption_keys=[encryption])


# --- support-assisted recovery: the domain's rule over the vault's hashes ------------------------


REGISTRATION_FORM = {
    "contract_accepted": True,
    "legal_status": "person",
    "surname": "Иванов",
    "first_name": "Иван",
    "passport_series": "4508",
    "passport_number": "731942",
    "date_of_birth": "1990-05-17",
    "issuing_authority": "ОВД",
    "date_of_issue": "2010-06-01",
    "mobile_phone": "89123456789",
    "region": "Moscow",
}


@pytest.mark.parametrize(
    ("claim", "proven"),
    [
        (
            {
                "passport_series": "45 08",
                "passport_number": "731942",
                "date_of_birth": "1990-05-17",
            },
            True,
        ),
        (
            {"passport_series": "4508", "passport_number": "731942", "date_of_birth": "1990-05-18"},
            False,
        ),
        (
            {"passport_series": "4509", "passport_number": "731942", "date_of_birth": "1990-05-17"},
            False,
        ),
        (
            {"passport_series": "4508", "passport_number": "731924", "date_of_birth": "1990-05-17"},
            False,
        ),
    ],
)
def test_support_recovery_needs_passport_and_birth_date_to_match(
    vault: PersonalDataVault, claim: dict[str, str], proven: bool
) -> None:
    registration = validate_registration(REGISTRATION_FORM, now=NOW, regions={"Moscow"})
    stored_proof = vault.lookup_hash(LookupKind.RECOVERY_PROOF, registration.recovery_proof_text())
    given = validate_recovery_claim(claim)

    _, outcome = guarded_attempt(
        ThrottleState(),
        now=NOW,
        verify=lambda: vault.matches(stored_proof, LookupKind.RECOVERY_PROOF, given.proof_text()),
        policy=SUPPORT_THROTTLE,
    )

    assert outcome.accepted is proven


def test_support_recovery_locks_after_a_few_wrong_claims(vault: PersonalDataVault) -> None:
    stored_proof = vault.lookup_hash(LookupKind.RECOVERY_PROOF, "4508731942|1990-05-17")
    state, results = ThrottleState(), []
    for hour in range(SUPPORT_THROTTLE.threshold + 1):
        state, outcome = guarded_attempt(
            state,
            now=NOW + timedelta(hours=hour),
            verify=lambda: vault.matches(
                stored_proof, LookupKind.RECOVERY_PROOF, "4508731942|1990-01-01"
            ),
            policy=SUPPORT_THROTTLE,
        )
        results.append(outcome.result)

    assert results[-2:] == [Attempt.LOCK_STARTED, Attempt.LOCKED]


# --- sealing secrets for the notifier -----------------------------------------------------------


@pytest.fixture(scope="module")
def notifier_keys() -> tuple[str, str]:
    return generate_keypair()


def test_a_sealed_secret_opens_with_the_private_key(notifier_keys: tuple[str, str]) -> None:
    public, private = notifier_keys
    payload = {"secret": "Ab3defGhJk7m", "destination": "+79123456789"}

    assert unseal(private, seal(public, payload)) == payload


def test_the_sealed_text_does_not_contain_the_secret(notifier_keys: tuple[str, str]) -> None:
    public, _ = notifier_keys
    sealed = seal(public, {"secret": "Ab3defGhJk7m", "destination": "+79123456789"})

    for clear in ("Ab3defGhJk7m", "79123456789"):
        assert clear not in sealed
        assert clear.encode() not in base64.b64decode(sealed.partition(":")[2])


def test_sealing_the_same_payload_twice_gives_different_texts(
    notifier_keys: tuple[str, str],
) -> None:
    public, _ = notifier_keys

    assert seal(public, {"secret": "123456"}) != seal(public, {"secret": "123456"})


def test_another_private_key_cannot_open_it(notifier_keys: tuple[str, str]) -> None:
    public, _ = notifier_keys
    _, stranger = generate_keypair()

    with pytest.raises(SealingError):
        unseal(stranger, seal(public, {"secret": "123456"}))


def test_an_altered_sealed_text_does_not_open(notifier_keys: tuple[str, str]) -> None:
    public, private = notifier_keys
    key_id, _, box = seal(public, {"secret": "123456"}).partition(":")
    raw = bytearray(base64.b64decode(box))
    raw[40] ^= 1

    with pytest.raises(SealingError):
        unseal(private, f"{key_id}:{base64.b64encode(bytes(raw)).decode()}")


@pytest.mark.parametrize("key", ["", "not-a-key", base64.b64encode(b"short").decode()])
def test_a_malformed_key_is_refused(key: str) -> None:
    with pytest.raises(SealingError):
        seal(key, {"secret": "123456"})
    with pytest.raises(SealingError):
        unseal(key, "AAAA")


def test_password_issued_on_the_topic_shows_only_the_masked_destination(
    notifier_keys: tuple[str, str],
) -> None:
    public, private = notifier_keys
    password, phone = generate_password(PASSWORD_POLICY), "+79123456789"
    event = PasswordIssued(
        account_number="100000000008",
        purpose=PasswordPurpose.INITIAL,
        channel="sms",
        masked_destination=mask_phone(phone),
        sealed_secret=seal(public, {"secret": password, "destination": phone}),
    )

    on_the_topic = event.model_dump_json()

    assert password not in on_the_topic and "79123456789" not in on_the_topic
    assert "+7 *** ***-67-89" in on_the_topic
    assert unseal(private, event.sealed_secret) == {"secret": password, "destination": phone}
