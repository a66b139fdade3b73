// The practitioner's acts (docs/protocol.md §12.7), as client/teleexpertise/billing.py
// and acts.py: the yearly pseudonym of a patient, the act recorded once the report
// exists (RQD for the requérant), the encrypted ledger decrypted on this device with the
// practitioner's account keys (which the server never sees), and its CSV export.
import type { Api } from "../api/http";
import { b64u, unb64u } from "../e2ee/bytes";
import { canonicalJson, type JsonObject, parseCanonical } from "../e2ee/canonical";
import { aesGcmDecrypt, aesGcmEncrypt, view } from "../e2ee/primitives";
import { accountKey } from "../e2ee/recovery";
import { StepError } from "./cases";
import TARIFFS from "./tariffs.json";

const PSEUDONYM_LABEL = "relais/v1/billing-pseudonym";
const LEDGER_LABEL = "relais/v1/billing-ledger";
const ENTRY_VERSION = 1;
const NONCE_BYTES = 12;
const LEDGER_PAGE = 500;
const DROM_DEPARTMENTS = ["971", "972", "973", "974", "976"];

export type ActCode = "RQD" | "TE2";
export type Zone = "metropole" | "drom";

export interface Tariff {
  code: string;
  zone: string;
  valid_from: string;
  valid_until: string | null;
  amount_cents: number;
  yearly_limit_per_patient: number;
}

export interface LedgerEntry {
  v: number;
  code: ActCode;
  day: string;
  amount_cents: number;
  zone: Zone;
  tariff_from: string;
  billable: boolean;
  limit: number;
  patient: JsonObject;
  room: number;
  requerant: string;
  requis: string;
  not_billable_reason: string;
}

export interface Act {
  id: number;
  room: number;
  code: string;
  entry: string;
}

function labelled(label: string, value: JsonObject): Uint8Array {
  const head = new TextEncoder().encode(label);
  const body = canonicalJson(value);
  const out = new Uint8Array(head.length + 1 + body.length);
  out.set(head);
  out.set(body, head.length + 1);
  return out;
}

export function zoneOfPostcode(postcode: string): Zone {
  return DROM_DEPARTMENTS.some((d) => postcode.startsWith(d)) ? "drom" : "metropole";
}

export function lookupTariff(code: ActCode, zone: Zone, day: string): Tariff {
  const row = (TARIFFS as Tariff[]).find((t) => t.code === code && t.zone === zone && t.valid_from <= day && (t.valid_until === null || day <= t.valid_until));
  if (!row) throw new StepError("no_tariff", `No tariff for ${code} (${zone}) on ${day}: update the tariff table.`, `Pas de tarif pour ${code} (${zone}) au ${day} : mettez à jour la table des tarifs.`);
  return row;
}

/** Upper case, no accents, hyphens and apostrophes as spaces, single spaces. */
export function normalisedTrait(text: string): string {
  const plain = text.normalize("NFKD").replace(/\p{M}/gu, "");
  return plain.toUpperCase().replace(/[-'\u2019]/g, " ").split(/\s+/).filter(Boolean).join(" ");
}

export function billingTraits(patient: JsonObject): JsonObject {
  return {
    birth_family_name: normalisedTrait(String(patient.birth_family_name)),
    first_birth_given_name: normalisedTrait(String((patient.birth_given_names as string[])[0])),
    birth_date: String(patient.birth_date),
    sex: String(patient.sex),
  };
}

/** The patient's pseudonym for this practitioner and year, from the
 * ``billing-pseudonym`` key. */
export async function pseudonymWithKey(pseudonymKey: Uint8Array, year: number, patient: JsonObject): Promise<string> {
  const key = await crypto.subtle.importKey("raw", view(pseudonymKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return b64u(new Uint8Array(await crypto.subtle.sign("HMAC", key, view(labelled(PSEUDONYM_LABEL, { patient: billingTraits(patient), year })))));
}

export async function pseudonym(secret: Uint8Array, year: number, patient: JsonObject): Promise<string> {
  return pseudonymWithKey(await accountKey(secret, "billing-pseudonym"), year, patient);
}

function associatedData(nationalId: string, room: number, code: string): Uint8Array {
  return labelled(LEDGER_LABEL, { code, national_id: nationalId, room });
}

export async function sealEntry(secret: Uint8Array, nationalId: string, entry: LedgerEntry): Promise<Uint8Array> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const key = await accountKey(secret, "billing-ledger");
  const ct = await aesGcmEncrypt(key, nonce, canonicalJson(entry as unknown as JsonObject), associatedData(nationalId, entry.room, entry.code));
  const out = new Uint8Array(1 + NONCE_BYTES + ct.length);
  out[0] = ENTRY_VERSION;
  out.set(nonce, 1);
  out.set(ct, 1 + NONCE_BYTES);
  return out;
}

/** Decrypt a stored entry: ``bad_ledger_entry`` when it is not this practitioner's
 * entry for this room and act (altered, moved, or not ours). */
export async function openEntry(secret: Uint8Array, nationalId: string, act: Act): Promise<LedgerEntry> {
  return openEntryWithKey(await accountKey(secret, "billing-ledger"), nationalId, act);
}

/** As openEntry, from the ``billing-ledger`` key itself. */
export async function openEntryWithKey(key: Uint8Array, nationalId: string, act: Act): Promise<LedgerEntry> {
  const refused = new StepError("bad_ledger_entry", "A ledger entry does not open: altered, moved or not yours.", "Une écriture du registre ne s'ouvre pas : modifiée, déplacée ou pas la vôtre.");
  try {
    const sealed = unb64u(act.entry);
    if (sealed[0] !== ENTRY_VERSION || sealed.length < 1 + NONCE_BYTES + 16) throw refused;
    const plain = await aesGcmDecrypt(key, sealed.slice(1, 1 + NONCE_BYTES), sealed.slice(1 + NONCE_BYTES), associatedData(nationalId, act.room, act.code));
    const entry = parseCanonical(plain) as unknown as LedgerEntry;
    if (entry.v !== ENTRY_VERSION || entry.room !== act.room || entry.code !== act.code) throw refused;
    return entry;
  } catch {
    throw refused;
  }
}

export interface BillingCheck {
  code: ActCode;
  count: number; // billable acts already recorded this year for this patient
  limit: number;
}

/** Where this patient stands for ``code`` this year, before the act (the SDK's
 * BillingBook.check): one HMAC and one ``GET billing/count``. */
export async function billingCheck(api: Api, secret: Uint8Array, code: ActCode, zone: Zone, day: string, patient: JsonObject): Promise<BillingCheck> {
  const tariff = lookupTariff(code, zone, day);
  const name = await pseudonym(secret, Number(day.slice(0, 4)), patient);
  const { count } = await api.get<{ count: number }>(`billing/count?code=${code}&year=${day.slice(0, 4)}&pseudonym=${encodeURIComponent(name)}`);
  return { code, count, limit: tariff.yearly_limit_per_patient };
}

/** The flag shown before a step beyond the yearly limit (the SDK's BillingCheck.warning). */
export function limitWarning(check: BillingCheck): StepError {
  const n = check.count + 1;
  return new StepError(
    "billing_limit_reached",
    `This would be act ${check.code} number ${n} this year for this patient: the limit is ${check.limit} per year and per professional, so it will not be billable.`,
    `Ce serait le ${n}e acte ${check.code} de l'année pour ce patient : la limite est de ${check.limit} par an et par professionnel, il ne sera pas facturable.`,
  );
}

/** Record this practitioner's act for a case whose report exists (billable unless the
 * yearly limit is reached; then amount 0 and the reason). */
export async function recordAct(api: Api, secret: Uint8Array, nationalId: string, fields: { code: ActCode; room: number; patient: JsonObject; requerant: string; requis: string; zone: Zone; day: string }): Promise<LedgerEntry> {
  const year = Number(fields.day.slice(0, 4));
  const tariff = lookupTariff(fields.code, fields.zone, fields.day);
  const name = await pseudonym(secret, year, fields.patient);
  const { count } = await api.get<{ count: number }>(`billing/count?code=${fields.code}&year=${year}&pseudonym=${encodeURIComponent(name)}`);
  let billable = count < tariff.yearly_limit_per_patient;
  for (let attempt = 0; ; attempt += 1) {
    const entry: LedgerEntry = {
      v: ENTRY_VERSION,
      code: fields.code,
      day: fields.day,
      amount_cents: billable ? tariff.amount_cents : 0,
      zone: fields.zone,
      tariff_from: tariff.valid_from,
      billable,
      limit: tariff.yearly_limit_per_patient,
      patient: fields.patient,
      room: fields.room,
      requerant: fields.requerant,
      requis: fields.requis,
      not_billable_reason: billable ? "" : "yearly_limit_reached",
    };
    const sealed = await sealEntry(secret, nationalId, entry);
    try {
      await api.post(`teleexpertise/${fields.room}/act`, { code: fields.code, year, pseudonym: name, billable, limit: tariff.yearly_limit_per_patient, entry: b64u(sealed) });
      return entry;
    } catch (error) {
      if (attempt > 0 || !billable || (error as { code?: string }).code !== "billing_limit_reached") throw error;
      billable = false; // another device took the last place meanwhile
    }
  }
}

/** Every act of this practitioner, from any of their devices, decrypted here. */
export async function readLedger(api: Api, secret: Uint8Array, nationalId: string): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await api.get<{ acts: Act[] }>(`billing/ledger?after=${after}&limit=${LEDGER_PAGE}`);
    for (const act of page.acts) entries.push(await openEntry(secret, nationalId, act));
    if (page.acts.length < LEDGER_PAGE) return entries;
    after = page.acts[page.acts.length - 1]!.id;
  }
}

export const CSV_COLUMNS = ["date", "acte", "montant_eur", "zone", "facturable", "motif_non_facturable", "patient_nom_naissance", "patient_premier_prenom", "patient_date_naissance", "patient_sexe", "matricule_ins", "oid_ins", "statut_identite", "requerant_idnat", "requis_idnat", "teleexpertise"];

function csvCell(value: string | number): string {
  const text = String(value);
  return /[";\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The acts as CSV for billing software, as the SDK's export_csv: ";"-separated, CRLF,
 * a header line, amounts "23.00", oldest first. */
export function exportCsv(entries: LedgerEntry[]): string {
  const sorted = [...entries].sort((a, b) => a.day.localeCompare(b.day) || a.room - b.room || a.code.localeCompare(b.code));
  const rows = sorted.map((e) => {
    const p = e.patient;
    return [e.day, e.code, `${Math.floor(e.amount_cents / 100)}.${String(e.amount_cents % 100).padStart(2, "0")}`, e.zone, e.billable ? "oui" : "non", e.not_billable_reason, String(p.birth_family_name), String((p.birth_given_names as string[])[0]), String(p.birth_date), String(p.sex), String(p.matricule ?? ""), String(p.oid ?? ""), String(p.status), e.requerant, e.requis, e.room];
  });
  return [CSV_COLUMNS, ...rows].map((row) => row.map(csvCell).join(";")).join("\r\n") + "\r\n";
}
