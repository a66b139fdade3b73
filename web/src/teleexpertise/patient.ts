// The patient's identity in its canonical form (docs/protocol.md §12.2 PATIENT), checked
// as documents/ins.py checks it: names, birth date, sex, and the matricule INS with its
// key and OID only for a qualified (QUAL) identity.
import type { JsonObject } from "../e2ee/canonical";

export class PatientError extends Error {
  constructor(
    readonly code: string,
    readonly english: string,
    readonly french: string,
  ) {
    super(english);
  }
}

export type IdentityStatus = "PROV" | "RECUP" | "VALI" | "QUAL";
export const STATUSES: IdentityStatus[] = ["PROV", "RECUP", "VALI", "QUAL"];
export const OIDS = ["1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"];
const MAX_NAME = 100;
const MAX_GIVEN_NAMES = 20;
const EARLIEST_BIRTH_DATE = "1870-01-01";
const MATRICULE = /^[1234578][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{8}$/;
const BIRTHPLACE = /^(?:[0-9]{5}|2[AB][0-9]{3})$/;
const NAME_PUNCTUATION = " -'";

export interface PatientFields {
  status: IdentityStatus;
  birthFamilyName: string;
  birthGivenNames: string[];
  birthDate: string; // YYYY-MM-DD
  sex: "F" | "M" | "U";
  birthplace?: string;
  usedFamilyName?: string;
  usedGivenName?: string;
  matricule?: string;
  oid?: string;
}

/** 97 - (body mod 97), Corsica's 2A and 2B counted as 19 and 18. */
export function nirKey(body: string): number {
  const digits = body.toUpperCase().replace("2A", "19").replace("2B", "18");
  if (body.length !== 13 || !/^[0-9]+$/.test(digits)) {
    throw new PatientError("bad_matricule", "A matricule INS body is 13 characters: digits, and 2A or 2B for Corsica.", "Le corps d'un matricule INS fait 13 caractères : des chiffres, et 2A ou 2B pour la Corse.");
  }
  return 97 - Number(BigInt(digits) % 97n);
}

export function checkMatricule(matricule: string): string {
  if (matricule.length !== 15 || !MATRICULE.test(matricule)) {
    throw new PatientError("bad_matricule", "A matricule INS is 15 characters: 13 (digits, 2A or 2B for Corsica) and a 2-digit key.", "Un matricule INS fait 15 caractères : 13 (chiffres, 2A ou 2B pour la Corse) et une clé de 2 chiffres.");
  }
  if (nirKey(matricule.slice(0, 13)) !== Number(matricule.slice(13))) {
    throw new PatientError("bad_matricule_key", "The key of the matricule INS is wrong (a digit was mistyped?).", "La clé du matricule INS est fausse (un chiffre mal saisi ?).");
  }
  return matricule;
}

function checkName(value: string, field: string): string {
  if (!value) throw new PatientError("bad_name", `${field}: a name is required.`, `${field} : un nom est obligatoire.`);
  if ([...value].length > MAX_NAME) throw new PatientError("bad_name", `${field}: at most ${MAX_NAME} characters.`, `${field} : au plus ${MAX_NAME} caractères.`);
  const chars = [...value];
  if (value !== value.trim() || value.includes("  ") || NAME_PUNCTUATION.includes(chars[0]!) || NAME_PUNCTUATION.includes(chars[chars.length - 1]!) || chars.some((c) => !NAME_PUNCTUATION.includes(c) && !/^\p{L}$/u.test(c))) {
    throw new PatientError("bad_name", `${field}: letters, single spaces, hyphens and apostrophes only.`, `${field} : lettres, espaces simples, traits d'union et apostrophes uniquement.`);
  }
  return value;
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** The canonical PATIENT object, or PatientError with the same codes as documents/ins.py. */
export function patientIdentity(fields: PatientFields): JsonObject {
  if (!STATUSES.includes(fields.status)) throw new PatientError("bad_status", "The identity status is one of PROV, RECUP, VALI, QUAL.", "Le statut de l'identité est PROV, RECUP, VALI ou QUAL.");
  checkName(fields.birthFamilyName, "birth_family_name");
  if (fields.birthGivenNames.length === 0 || fields.birthGivenNames.length > MAX_GIVEN_NAMES) {
    throw new PatientError("bad_given_names", `birth_given_names: 1 to ${MAX_GIVEN_NAMES} birth given names, in order.`, `birth_given_names : 1 à ${MAX_GIVEN_NAMES} prénoms de naissance, dans l'ordre.`);
  }
  for (const given of fields.birthGivenNames) checkName(given, "birth_given_names");
  if (!/^\d{4}-\d{2}-\d{2}$/.test(fields.birthDate) || Number.isNaN(Date.parse(fields.birthDate)) || fields.birthDate < EARLIEST_BIRTH_DATE || fields.birthDate > today()) {
    throw new PatientError("bad_birth_date", `birth_date: a date between ${EARLIEST_BIRTH_DATE} and today.`, `birth_date : une date entre le ${EARLIEST_BIRTH_DATE} et aujourd'hui.`);
  }
  if (!["F", "M", "U"].includes(fields.sex)) throw new PatientError("bad_sex", "sex: F, M or U.", "sex : F, M ou U.");
  if (fields.birthplace !== undefined && !BIRTHPLACE.test(fields.birthplace)) {
    throw new PatientError("bad_birthplace", "birthplace: the 5-character INSEE code of the birth commune (99xxx abroad).", "birthplace : le code INSEE à 5 caractères de la commune de naissance (99xxx à l'étranger).");
  }
  if (fields.usedFamilyName !== undefined) checkName(fields.usedFamilyName, "used_family_name");
  if (fields.usedGivenName !== undefined) checkName(fields.usedGivenName, "used_given_name");
  const carried = fields.matricule !== undefined || fields.oid !== undefined;
  if (fields.status !== "QUAL" && carried) {
    throw new PatientError("matricule_not_qualified", `A ${fields.status} identity does not carry a matricule INS: only a qualified (QUAL) one does.`, `Une identité ${fields.status} ne porte pas de matricule INS : seule une identité qualifiée (QUAL) le porte.`);
  }
  if (fields.status === "QUAL") {
    if (fields.matricule === undefined || fields.oid === undefined) throw new PatientError("matricule_missing", "A qualified (QUAL) identity carries its matricule INS and its OID.", "Une identité qualifiée (QUAL) porte son matricule INS et son OID.");
    if (!OIDS.includes(fields.oid)) throw new PatientError("bad_oid", "oid: 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) or .4.11 (demo).", "oid : 1.2.250.1.213.1.4.8 (NIR), .4.9 (NIA), .4.10 (test) ou .4.11 (démo).");
    checkMatricule(fields.matricule);
    if (fields.birthplace === undefined) throw new PatientError("bad_birthplace", "A qualified (QUAL) identity has the INSEE code of its birth place.", "Une identité qualifiée (QUAL) a le code INSEE de son lieu de naissance.");
  }
  const value: JsonObject = {
    v: 1,
    type: "patient_identity",
    status: fields.status,
    birth_family_name: fields.birthFamilyName,
    birth_given_names: fields.birthGivenNames,
    birth_date: fields.birthDate,
    sex: fields.sex,
  };
  if (fields.birthplace !== undefined) value.birthplace = fields.birthplace;
  if (fields.usedFamilyName !== undefined) value.used_family_name = fields.usedFamilyName;
  if (fields.usedGivenName !== undefined) value.used_given_name = fields.usedGivenName;
  if (fields.matricule !== undefined) value.matricule = fields.matricule;
  if (fields.oid !== undefined) value.oid = fields.oid;
  return value;
}
