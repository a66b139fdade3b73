// One runner per vector file. ``check(name, body)`` records one named case.
import { b64u, concat, fromHex, fromUtf8, hex, unb64u } from "../src/e2ee/bytes";
import { canonicalJson, canonicalText, parseCanonical, type JsonObject } from "../src/e2ee/canonical";
import { decryptEnvelope, type DeviceRef, encryptEnvelope, newOutboundSession, parseEnvelope, sessionKey } from "../src/e2ee/envelopes";
import { acceptShare, openShare, sealShare, shareKexSerial } from "../src/e2ee/shares";
import { applyEvent, replayChain, type RoomState, signEvent } from "../src/e2ee/state";
import { verifyKex } from "../src/e2ee/kex";
import { commitment, LinkCode } from "../src/e2ee/linking";
import { CompactTree } from "../src/e2ee/compact_tree";
import * as merkle from "../src/e2ee/merkle";
import { decryptProfile } from "../src/e2ee/profile";
import { checkProfileKey, historyKeyId, openTransfer, parseHistoryKey, parseProfileKey, parseProfileKeyRecord, profileKeyId, profileKeyRecord, transferBody, verifyTransfer } from "../src/e2ee/history";
import { openSealed } from "../src/e2ee/recovery";
import { HISTORY } from "../src/e2ee/labels";
import { messageKey, nextChainKey } from "../src/e2ee/ratchet";
import { accountKey, RecoveryCode } from "../src/e2ee/recovery";
import { safetyNumber } from "../src/e2ee/safety";
import { utf8 } from "../src/e2ee/bytes";
import { hkdf, SigningKey, x25519Public } from "../src/e2ee/primitives";
import { bind, certify } from "../src/e2ee/identity";
import { LOG_SIGNING_KEY, LOG_VRF_KEY } from "../src/e2ee/labels";
import { leafHash } from "../src/e2ee/merkle";
import { entryLabel, issueEntry, labelFor, labelInput, logKeyId, type LogRecord, parseLogEntry, signDeviceRegistration, verifyChain, verifyLabel } from "../src/e2ee/transparency";
import { checkConsistency, checkInclusion, cosign, cosigners, parseTreeHead, signTreeHead, type TreeHead, verifyCosignature, verifyVrfKey } from "../src/e2ee/tree_heads";
import { vrfProofToHash, vrfProve, vrfPublicKey, vrfVerify } from "../src/e2ee/vrf";
import { assertEqual, assertRefused, assertTrue } from "./assert";

export type Check = (name: string, body: () => Promise<void> | void) => Promise<void>;
// Vectors are JSON read as the Python tests read them: loosely typed.
type Vector = any;
export type Runner = (data: Vector, check: Check, context: Record<string, unknown>) => Promise<void>;

export const runners: Record<string, Runner> = {};

runners.canonical_json = async (v, check) => {
  for (const [i, c] of v.cases.entries()) {
    await check(`case ${i}`, () => {
      assertEqual(canonicalText(c.input), c.canonical, "canonical");
      assertEqual(parseCanonical(utf8(c.canonical)), c.input, "parsed");
    });
  }
  for (const [i, value] of v.rejected.entries()) {
    await check(`rejected ${i}`, () => assertRefused(() => canonicalText(value), "rejected value"));
  }
};

runners.merkle = async (v, check) => {
  const hashes = await Promise.all(v.leaves.map((leaf: string) => merkle.leafHash(fromHex(leaf))));
  await check("leaf hashes", () => assertEqual(hashes.map(hex), v.leaf_hashes, "leaf hashes"));
  for (const [size, expected] of Object.entries(v.roots)) {
    await check(`root ${size}`, async () => assertEqual(hex(await merkle.root(hashes.slice(0, Number(size)))), expected, "root"));
  }
  await check("compact tree roots", async () => {
    // The monitor's right edge gives every root of the vectors, and survives JSON.
    let tree = CompactTree.empty();
    for (const [i, leafHash] of hashes.entries()) {
      tree = CompactTree.fromJson(JSON.parse(JSON.stringify(tree.toJson())));
      await tree.append(leafHash);
      const expected = v.roots[String(i + 1)];
      if (expected) assertEqual(hex(await tree.root()), expected, `compact root ${i + 1}`);
    }
  });
  for (const c of v.inclusion) {
    await check(`inclusion ${c.index} in ${c.size}`, async () => {
      await merkle.verifyInclusion(hashes[c.index], c.index, c.size, c.proof.map(fromHex), fromHex(v.roots[String(c.size)]));
      if (c.proof.length) {
        const bad = c.proof.map(fromHex);
        bad[0][0] ^= 1;
        await assertRefused(() => merkle.verifyInclusion(hashes[c.index], c.index, c.size, bad, fromHex(v.roots[String(c.size)])), "tampered proof", "bad_proof");
      }
    });
  }
  for (const c of v.consistency) {
    await check(`consistency ${c.old_size} to ${c.new_size}`, async () => {
      const oldRoot = fromHex(v.roots[String(c.old_size)]);
      const newRoot = fromHex(v.roots[String(c.new_size)]);
      await merkle.verifyConsistency(c.old_size, c.new_size, oldRoot, newRoot, c.proof.map(fromHex));
      if (c.proof.length) {
        const bad = c.proof.map(fromHex);
        bad[bad.length - 1][0] ^= 1;
        await assertRefused(() => merkle.verifyConsistency(c.old_size, c.new_size, oldRoot, newRoot, bad), "tampered proof", "bad_proof");
      }
    });
  }
};

runners.ratchet = async (v, check) => {
  let chain = unb64u(v.steps[0].chain_key);
  for (const step of v.steps) {
    await check(`step ${step.index}`, async () => {
      assertEqual(b64u(chain), step.chain_key, "chain key");
      const keys = await messageKey(chain);
      assertEqual([b64u(keys.key), b64u(keys.nonce)], [step.message_key, step.nonce], "message key");
    });
    chain = await nextChainKey(chain);
  }
};

export async function deviceKeys(entry: Vector): Promise<{ signing: SigningKey; kexPrivate: Uint8Array }> {
  const signing = await SigningKey.fromSeed(unb64u(entry.sign_private));
  const kexPrivate = unb64u(entry.kex_private);
  assertEqual(b64u(signing.publicKey), entry.sign_key, `${entry.name} sign key`);
  assertEqual(b64u(await x25519Public(kexPrivate)), entry.kex_key, `${entry.name} kex key`);
  return { signing, kexPrivate };
}

runners.kex_key = async (v, check) => {
  await check("published key verifies", async () => {
    const { signing, kexPrivate } = await deviceKeys(v.device);
    const published = await verifyKex(utf8(v.published), "810002765435", 11, signing.publicKey, v.now);
    assertEqual(b64u(published.kexKey), b64u(await x25519Public(kexPrivate)), "kex key");
    assertEqual(published.serial, 1, "serial");
    await assertRefused(() => verifyKex(utf8(v.published), "810002765435", 12, signing.publicKey, v.now), "another device", "wrong_recipient");
    await assertRefused(() => verifyKex(utf8(v.published), "810002765435", 11, signing.publicKey, published.expiresAt), "expired", "expired_key");
  });
};

runners.linking = async (v, check) => {
  await check("codes", async () => {
    const code = new LinkCode(unb64u(v.link_id), await commitment(v.request as JsonObject));
    assertEqual(b64u(code.commitment), v.commitment, "commitment");
    assertEqual([code.qrPayload, code.shortCode], [v.qr_payload, v.short_code], "codes");
    assertTrue(await LinkCode.parse(v.short_code).matches(v.request), "short code matches");
    assertTrue(await LinkCode.parse(v.qr_payload).matches(v.request), "QR code matches");
    assertTrue(await LinkCode.parse(v.short_code.toLowerCase().replace(/O/gi, "0")).matches(v.request), "typed code matches");
    const swapped = { ...v.request, kex_key: v.request.sign_key };
    assertTrue(!(await LinkCode.parse(v.short_code).matches(swapped)), "a swapped request does not match");
  });
};

runners.recovery = async (v, check) => {
  await check("recovery key", async () => {
    const code = RecoveryCode.parse(v.code);
    assertEqual(b64u(await code.publicKey()), v.recovery_public, "recovery public key");
    assertEqual(code.toString(), v.code, "code text");
  });
  for (const [purpose, key] of Object.entries(v.account_keys)) {
    await check(`account key ${purpose}`, async () => assertEqual(b64u(await accountKey(unb64u(v.account_secret), purpose)), key, purpose));
  }
};

runners.safety_number = async (v, check) => {
  await check("digits and QR", async () => {
    const number = await safetyNumber(v.first.national_id, unb64u(v.first.identity_key), v.second.national_id, unb64u(v.second.identity_key));
    assertEqual([number.digits, number.qrPayload], [v.digits, v.qr_payload], "safety number");
    const swapped = await safetyNumber(v.second.national_id, unb64u(v.second.identity_key), v.first.national_id, unb64u(v.first.identity_key));
    assertEqual(swapped.digits, v.digits, "the same from the other side");
  });
};

runners.room_profile = async (v, check) => {
  await check("opens", async () => {
    const key = { keyId: unb64u(v.key_id), key: unb64u(v.key) };
    assertEqual(await decryptProfile(v.room, v.version, key, unb64u(v.ct)), v.profile, "profile");
    await assertRefused(() => decryptProfile(v.room, v.version + 1, key, unb64u(v.ct)), "another version", "decrypt_failed");
  });
};

runners.vrf_rfc9381 = async (v, check) => {
  for (const [i, c] of v.cases.entries()) {
    await check(`RFC 9381 case ${i}`, async () => {
      const [sk, pk, alpha, pi, beta] = ["sk", "pk", "alpha", "pi", "beta"].map((k) => fromHex(c[k])) as Uint8Array[];
      assertEqual(hex(await vrfPublicKey(sk!)), c.pk, "public key");
      assertEqual(hex(await vrfProve(sk!, alpha!)), c.pi, "proof");
      assertEqual(hex(await vrfProofToHash(pi!)), c.beta, "proof to hash");
      assertEqual(hex(await vrfVerify(pk!, alpha!, pi!)), hex(beta!), "verify");
      const flipped = (data: Uint8Array, at: number, mask: number): Uint8Array => {
        const out = data.slice();
        out[at]! ^= mask;
        return out;
      };
      const zeroKey = await vrfPublicKey(new Uint8Array(32));
      const refusals: [Uint8Array, Uint8Array, Uint8Array, string][] = [
        [pk!, concat(alpha!, new Uint8Array([0])), pi!, "another input"],
        [pk!, alpha!, flipped(pi!, 40, 1), "a changed proof"],
        [pk!, alpha!, flipped(pi!, 79, 0x80), "s >= L"],
        [zeroKey, alpha!, pi!, "another key"],
        [new Uint8Array(32), alpha!, pi!, "not a point of the subgroup"],
      ];
      for (const [key, input, proof, what] of refusals) await assertRefused(() => vrfVerify(key, input, proof), what, "bad_proof");
    });
  }
};

runners.keylog = async (v, check) => {
  const seed = unb64u(v.log_seed);
  const logKey = await SigningKey.fromSeed(await hkdf(seed, utf8(LOG_SIGNING_KEY), 32));
  const vrfSecret = await hkdf(seed, utf8(LOG_VRF_KEY), 32);
  await check("log keys from the seed", async () => {
    assertEqual([b64u(logKey.publicKey), b64u(vrfSecret)], [v.log_public, v.vrf_secret], "keys");
    assertEqual(b64u(await vrfPublicKey(vrfSecret)), v.vrf_public, "VRF public key");
    await verifyVrfKey(logKey.publicKey, unb64u(v.vrf_public), unb64u(v.vrf_key_sig));
    assertEqual(await logKeyId(logKey.publicKey), v.log_id, "log id");
  });
  await check("label", async () => {
    assertEqual(b64u(labelInput(v.national_id)), v.label_input, "label input");
    const { label, proof } = await labelFor(vrfSecret, v.national_id);
    assertEqual([b64u(label), b64u(proof)], [v.label, v.vrf_proof], "label and proof");
    assertEqual(b64u(await vrfVerify(unb64u(v.vrf_public), labelInput(v.national_id), proof)), v.vrf_output, "VRF output");
    await verifyLabel(unb64u(v.vrf_public), v.national_id, label, proof);
    await assertRefused(() => verifyLabel(unb64u(v.vrf_public), "810001987659", label, proof), "another person's label", "bad_proof");
  });
  const identity = await SigningKey.fromSeed(unb64u(v.identity_private));
  const phone = await SigningKey.fromSeed(unb64u(v.device_private));
  await check("binding and device signatures", async () => {
    assertEqual(b64u(await bind(identity, v.national_id)), v.binding, "binding");
    assertEqual(b64u(await certify(identity, v.national_id, v.device_number, "device", phone.publicKey)), v.cross_sig, "cross_sig");
    assertEqual(b64u(await signDeviceRegistration(phone, v.national_id, v.device_number, "device", identity.publicKey)), v.self_sig, "self_sig");
  });
  const leaves = v.entries.map((e: string) => utf8(e));
  await check("entries, leaves and the chain", async () => {
    const records: LogRecord[] = [];
    for (const leaf of leaves) records.push(await parseLogEntry(leaf, logKey.publicKey));
    const reissued = [];
    for (const record of records) reissued.push(fromUtf8(await issueEntry(logKey, record)));
    assertEqual(reissued, v.entries, "entries issued again");
    const hashes = [];
    for (const leaf of leaves) hashes.push(b64u(await leafHash(leaf)));
    assertEqual(hashes, v.leaf_hashes, "leaf hashes");
    const chain = await verifyChain(v.national_id, unb64u(v.label), records.map((r, i) => [i, r] as [number, LogRecord]));
    assertEqual(b64u(chain.identityKey!), b64u(identity.publicKey), "identity key");
    assertEqual(chain.devices.size, 0, "the device entry was followed by its revocation");
    await assertRefused(() => verifyChain(v.national_id, unb64u(v.label), records.map((r, i) => [i + 1, r] as [number, LogRecord])), "a broken chain", "bad_chain");
    const tampered = fromUtf8(leaves[0]).replace('"issued_at":1', '"issued_at":2');
    await assertRefused(() => parseLogEntry(utf8(tampered), logKey.publicKey), "a leaf the log did not sign", "bad_signature");
  });
  await check("tree heads, proofs, cosignature", async () => {
    const heads: TreeHead[] = [];
    for (const h of v.tree_heads) heads.push(await parseTreeHead(h, logKey.publicKey));
    for (const head of heads) {
      const signed = await signTreeHead(logKey, head.size, head.root, head.timestamp);
      assertEqual(b64u(signed.signature), b64u(head.signature), "head signature");
    }
    await checkInclusion(leaves[1], 1, v.inclusion_of_device_in_3, heads[2]!);
    await checkConsistency(heads[0]!, heads[2]!, v.consistency_1_to_3);
    await assertRefused(() => checkInclusion(leaves[0], 1, v.inclusion_of_device_in_3, heads[2]!), "another leaf", "bad_proof");
    const witness = await SigningKey.fromSeed(unb64u(v.witness_private));
    assertEqual(b64u(witness.publicKey), v.witness_public, "witness key");
    assertEqual(await cosign(witness, logKey.publicKey, heads[2]!), v.cosignature_of_head_3, "cosignature");
    await verifyCosignature(v.cosignature_of_head_3, logKey.publicKey, witness.publicKey, heads[2]!);
    await assertRefused(() => verifyCosignature(v.cosignature_of_head_3, logKey.publicKey, witness.publicKey, heads[1]!), "a cosignature of another head", "bad_signature");
 
    // What a head needs: the cosignatures of the pinned witnesses, and only theirs.
    const other = await SigningKey.fromSeed(new Uint8Array(32).fill(7));
    assertEqual((await cosigners([v.cosignature_of_head_3], logKey.publicKey, [witness.publicKey], heads[2]!)).length, 1, "the witness cosigned head 3");
    assertEqual((await cosigners([v.cosignature_of_head_3], logKey.publicKey, [witness.publicKey], heads[1]!)).length, 0, "not head 2");
    assertEqual((await cosigners([v.cosignature_of_head_3, "junk", null], logKey.publicKey, [other.publicKey], heads[2]!)).length, 0, "not another witness");
    assertEqual(b64u(entryLabel(leaves[0])), v.label, "a leaf's label");
  });
};

runners.room_state = async (v, check) => {
  await check("identities", async () => {
    for (const person of v.identities) {
      const owner = await SigningKey.fromSeed(unb64u(person.identity_private));
      assertEqual(b64u(owner.publicKey), person.identity_key, `${person.name} identity key`);
    }
  });
  await check("the chain verifies", async () => {
    let current: RoomState | null = null;
    for (const [i, raw] of v.events.entries()) {
      const applied = await applyEvent(current, utf8(raw));
      assertEqual(b64u(applied.event.hash), v.heads[i], `head ${i}`);
      current = applied.state;
    }
    assertEqual(current!.epoch, v.final_epoch, "final epoch");
    assertEqual([...current!.members.keys()].sort(), ["810001987659", "810003456786"], "members");
    assertEqual([...current!.members.get("810001987659")!.devices.keys()].sort((a, b) => a - b), [9, 12], "devices");
  });
  for (const c of v.rejected) {
    await check(`refused: ${c.why}`, async () => {
      const partial = await replayChain(v.events.slice(0, c.after).map(utf8));
      await assertRefused(() => applyEvent(partial, utf8(c.event)), c.why, c.code);
    });
  }
  const policy = v.archive_to_members;
  await check("archive_to_members: the policy event reproduces and round-trips", async () => {
    const before = await replayChain(v.events.slice(0, policy.after).map(utf8));
    const nurse = await deviceKeys(v.devices.find((d: Vector) => d.name === "nurse"));
    const made = await signEvent({ state: before, room: before.room, author: ["810003456786", 7], key: nurse.signing, action: "set_policy", content: { policy: { ...policy.policy } }, timestamp: JSON.parse(policy.event).event.ts, log: null });
    assertEqual(fromUtf8(made), policy.event, "set_policy event");
    const applied = await applyEvent(before, made);
    assertEqual(b64u(applied.event.hash), policy.head, "head");
    assertEqual(canonicalText(applied.state.policy), canonicalText(policy.policy), "policy");
    assertTrue(!Object.hasOwn(before.policy, "archive_to_members"), "absent before");
  });
  for (const c of policy.refused) {
    await check(`archive_to_members refused: ${c.why}`, async () => {
      const before = await replayChain(v.events.slice(0, policy.after).map(utf8));
      await assertRefused(() => applyEvent(before, utf8(c.event)), c.why, c.code);
    });
  }
};

async function chainOf(context: Record<string, unknown>, events: number): Promise<{ state: RoomState; devices: Map<string, { signing: SigningKey; kexPrivate: Uint8Array }> }> {
  const chain = context.room_state as Vector;
  const devices = new Map();
  for (const d of chain.devices) devices.set(d.name, await deviceKeys(d));
  return { state: await replayChain(chain.events.slice(0, events).map(utf8)), devices };
}

runners.envelope = async (v, check, context) => {
  const { state, devices } = await chainOf(context, v.chain_events);
  const start = v.session;
  const sender: DeviceRef = [v.sender[0], v.sender[1]];
  await check("envelopes reproduce", async () => {
    const outbound = { room: state.room, sender, keyId: unb64u(start.key_id), chainKey: unb64u(start.chain_key), index: start.index, epoch: state.epoch, createdAtMs: 0, sharedWith: [] };
    // The log head the vectors gossip (a seed-derived root in tests/vectors/generate.py).
    const log = JSON.parse(v.envelopes[0]).log;
    const made = [];
    for (const [i, content] of v.contents.entries()) {
      made.push(fromUtf8(await encryptEnvelope(outbound, state, devices.get("nurse")!.signing, content, v.seqs[i], v.timestamps[i], log)));
    }
    assertEqual(made, v.envelopes, "envelopes");
  });
  await check("envelopes decrypt once", async () => {
    const inbound = { room: state.room, sender, keyId: unb64u(start.key_id), chainKey: unb64u(start.chain_key), nextIndex: 0, epoch: state.epoch, skipped: new Map() };
    const sessions = new Map([[sessionKey(sender, inbound.keyId), inbound]]);
    for (const [i, envelope] of v.envelopes.entries()) {
      const opened = await decryptEnvelope(state, parseEnvelope(utf8(envelope)), sessions);
      assertEqual([opened.content, opened.seq], [v.contents[i], v.seqs[i]], "content");
    }
    await assertRefused(async () => decryptEnvelope(state, parseEnvelope(utf8(v.envelopes[0])), sessions), "a replay", "replay");
    const forged = JSON.parse(v.envelopes[1]);
    forged.index = 5;
    await assertRefused(async () => decryptEnvelope(state, parseEnvelope(canonicalJson(forged)), sessions), "a changed header", "bad_signature");
  });
};

runners.hpke_share = async (v, check, context) => {
  const { state, devices } = await chainOf(context, v.chain_events);
  const message = utf8(v.to_device_message);
  const recipient: DeviceRef = [v.recipient[0], v.recipient[1]];
  await check("the share opens and is accepted", async () => {
    assertEqual(shareKexSerial(message), 1, "kex serial");
    const opened = await openShare(message, devices.get("pharmacist")!.kexPrivate, recipient);
    assertEqual(opened.body, v.share, "share");
    assertTrue(opened.profileKey !== null, "profile key");
    const session = await acceptShare(opened, state);
    assertEqual(b64u(session.chainKey), v.share.chain_key, "chain key");
    await assertRefused(() => openShare(message, devices.get("doctor")!.kexPrivate, recipient), "another device's key", "decrypt_failed");
    await assertRefused(() => openShare(message, devices.get("pharmacist")!.kexPrivate, ["810002765435", 12]), "another recipient", "wrong_recipient");
  });
  await check("a share sealed here opens", async () => {
    const session = newOutboundSession(state.room, ["810003456786", 7], state.epoch, 0);
    const pharmacist = devices.get("pharmacist")!;
    const kex = { nationalId: recipient[0], device: recipient[1], kexKey: await x25519Public(pharmacist.kexPrivate), serial: 3, createdAt: 0, expiresAt: 1, raw: new Uint8Array() };
    const sealed = await sealShare(session, state.epoch, devices.get("nurse")!.signing, recipient, kex);
    assertEqual(shareKexSerial(sealed), 3, "kex serial");
    const accepted = await acceptShare(await openShare(sealed, pharmacist.kexPrivate, recipient), state);
    assertEqual(b64u(accepted.chainKey), b64u(session.chainKey), "chain key");
  });
};

runners.history_keys = async (v, check, context) => {
  const { state: before } = await chainOf(context, v.after);
  const { state, event } = await applyEvent(before, utf8(v.set_profile));
  const devices = new Map();
  for (const d of v.devices) devices.set(d.name, await deviceKeys(d));
  const nurse = devices.get("nurse")!;
  const sender: DeviceRef = [v.sender[0], v.sender[1]];
  const recipient: DeviceRef = [v.recipient[0], v.recipient[1]];
  const historyKey = parseHistoryKey(v.history_key);
  const profileKey = parseProfileKey(v.profile_key);
  await check("set_profile applies", () => assertEqual(b64u(event.hash), v.head, "head"));
  await check("transfer reproduces", async () => {
    assertEqual(await historyKeyId(historyKey.room, historyKey.sender, historyKey.keyId), v.history_key_id, "history key id");
    const body = transferBody([historyKey], sender, recipient, [profileKey]);
    assertEqual(fromUtf8(canonicalJson(body)), v.transfer, "transfer");
    assertEqual(b64u(await nurse.signing.sign(HISTORY, body)), v.sig, "signature");
    const alone = transferBody([historyKey], sender, recipient);
    assertEqual(fromUtf8(canonicalJson(alone)), v.transfer_without_profile_keys, "transfer without profile keys");
    assertEqual(b64u(await nurse.signing.sign(HISTORY, alone)), v.sig_without_profile_keys, "signature without profile keys");
  });
  await check("transfer opens and its profile key is the room's", async () => {
    const opened = await openTransfer(utf8(v.message), devices.get("nurse-laptop")!.kexPrivate, recipient);
    await verifyTransfer(opened, nurse.signing.publicKey);
    assertEqual(fromUtf8(canonicalJson(opened.body)), v.transfer, "opened body");
    assertEqual(opened.profileKeys.length, 1, "profile keys");
    await checkProfileKey(opened.profileKeys[0]!, state);
    assertEqual(await decryptProfile(state.room, 1, opened.profileKeys[0]!.key, state.profile!.ciphertext), v.profile, "profile");
    await assertRefused(() => checkProfileKey(profileKey, before), "before set_profile", "unknown_key");
    await assertRefused(() => openTransfer(utf8(v.message), nurse.kexPrivate, recipient), "another device's key", "decrypt_failed");
  });
  await check("backup record", async () => {
    const record = await openSealed(RecoveryCode.parse(v.backup.code), unb64u(v.backup.sealed));
    assertEqual(record, v.backup.record, "record");
    assertEqual(profileKeyRecord(parseProfileKeyRecord(record)), v.backup.record, "record reproduces");
    assertEqual(await profileKeyId(profileKey), v.backup.id, "record id");
  });
  for (const c of v.refused) {
    await check(`refused: ${c.why}`, () => assertRefused(() => checkProfileKey(parseProfileKey(c.profile_key), state), c.why, c.code));
  }
};
