// A CDA R2 niveau 1 document in the browser: the CI-SIS "structuration minimale" header
// and a PDF body, element for element as the SDK's documents/cda.py build_cda writes it
// (its module docstring lists the parts). Built with the browser's XML DOM
// (document.implementation.createDocument) and written by XMLSerializer, so names and
// texts are escaped by the platform, never by hand.
import type { JsonObject } from "../e2ee/canonical";
import CODES from "./codes.json";

export const HL7 = "urn:hl7-org:v3";
const XSI = "http://www.w3.org/2001/XMLSchema-instance";
const XMLNS = "http://www.w3.org/2000/xmlns/";
export const TEMPLATE_IDS = ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.2.20"];
const IDNAT_PS_OID = "1.2.250.1.71.4.2.1";
const IDNAT_STRUCT_OID = "1.2.250.1.71.4.2.2";
const GENDER: Record<string, string> = { F: "F", M: "M", U: "UN" };

export interface Code {
  code: string;
  system: string;
  display: string;
  system_name?: string;
}

type CodeTable = Record<string, Record<string, Code>>;
const TABLES = CODES as unknown as CodeTable & { confidentiality: Code };

/** ``code`` as the CI-SIS value set ``set`` defines it (the part of the sets the
 * browser needs, web/src/teleexpertise/codes.json, kept equal to documents/valuesets). */
export function codeIn(set: string, code: string): Code {
  const found = TABLES[set]?.[code];
  if (!found) throw new Error(`${code} is not in the CI-SIS value set ${set}`);
  return found;
}

/** documents/codes.py author_specialty: profession and savoir-faire when J01 knows the
 * pair, else the profession alone. */
export function authorSpecialty(profession: string, specialty: string): Code {
  return (specialty ? TABLES.J01?.[`G15_${profession}/${specialty}`] : undefined) ?? codeIn("J01", `G15_${profession}`);
}

export interface Organisation {
  nationalId: string; // IdNat_Struct
  name: string;
}

export interface CdaAuthor {
  nationalId: string; // IdNat_PS
  familyName: string;
  givenName: string;
  professionCode: string;
  specialtyCode: string;
}

export interface CdaFields {
  documentId: string;
  setId: string;
  typeCode: Code;
  title: string;
  effectiveTime: Date;
  patient: JsonObject; // the canonical PATIENT of §12.2
  author: CdaAuthor; // author, legal authenticator and performer
  custodian: Organisation;
  serviceStart: Date;
  serviceEnd: Date;
  practiceSetting: Code;
  facilityType: Code;
  pdf: Uint8Array;
}

/** A fresh OID for a document id: ``2.25.`` + a random UUID as an integer (ITU-T X.667). */
export function newOid(): string {
  return `2.25.${BigInt(`0x${crypto.randomUUID().replace(/-/g, "")}`).toString()}`;
}

/** An HL7 TS in UTC with its offset: ``20260401134745+0000``. */
export function cdaTime(moment: Date): string {
  return `${moment.toISOString().replace(/[-:T]/g, "").slice(0, 14)}+0000`;
}

/** Standard base64 on one line (Python's b64encode), by the platform's btoa, 3 KiB at a time. */
export function base64(data: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < data.length; i += 3072) parts.push(btoa(String.fromCharCode(...data.subarray(i, i + 3072))));
  return parts.join("");
}

class Writer {
  readonly doc: XMLDocument;

  constructor() {
    this.doc = document.implementation.createDocument(HL7, "ClinicalDocument", null);
    this.doc.documentElement.setAttributeNS(XMLNS, "xmlns:xsi", XSI);
  }

  add(parent: Element, tag: string, text: string | null = null, attributes: Record<string, string> = {}): Element {
    const element = this.doc.createElementNS(HL7, tag);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== null) element.textContent = text;
    parent.appendChild(element);
    return element;
  }

  code(parent: Element, tag: string, value: Code): Element {
    return this.add(parent, tag, null, { code: value.code, displayName: value.display, codeSystem: value.system, ...(value.system_name ? { codeSystemName: value.system_name } : {}) });
  }

  ii(parent: Element, root: string, extension?: string, tag = "id"): Element {
    return this.add(parent, tag, null, extension === undefined ? { root } : { root, extension });
  }

  personName(parent: Element, author: CdaAuthor): void {
    const name = this.add(parent, "name");
    this.add(name, "given", author.givenName);
    this.add(name, "family", author.familyName);
  }

  organisation(parent: Element, tag: string, organisation: Organisation): Element {
    const element = this.add(parent, tag);
    this.ii(element, IDNAT_STRUCT_OID, organisation.nationalId);
    this.add(element, "name", organisation.name);
    return element;
  }
}

function recordTarget(w: Writer, root: Element, patient: JsonObject): void {
  const role = w.add(w.add(root, "recordTarget"), "patientRole");
  if (patient.status === "QUAL" && patient.matricule && patient.oid) w.ii(role, String(patient.oid), String(patient.matricule));
  else w.add(role, "id", null, { nullFlavor: "NI" }); // no qualified INS and no local id
  const person = w.add(role, "patient", null, { classCode: "PSN" });
  const name = w.add(person, "name");
  const given = (patient.birth_given_names as string[]).map(String);
  w.add(name, "family", String(patient.birth_family_name), { qualifier: "BR" });
  w.add(name, "given", given.join(" "));
  w.add(name, "given", given[0]!, { qualifier: "BR" });
  if (patient.used_family_name) w.add(name, "family", String(patient.used_family_name), { qualifier: "CL" });
  if (patient.used_given_name) w.add(name, "given", String(patient.used_given_name), { qualifier: "CL" });
  const gender = codeIn("J143", GENDER[String(patient.sex)] ?? "UN");
  w.add(person, "administrativeGenderCode", null, { code: gender.code, displayName: gender.display, codeSystem: gender.system });
  w.add(person, "birthTime", null, { value: String(patient.birth_date).replace(/-/g, "") });
  if (patient.birthplace) w.add(w.add(w.add(w.add(person, "birthplace"), "place"), "addr"), "county", String(patient.birthplace));
}

/** The document as UTF-8 XML bytes, with its declaration. */
export function buildCda(fields: CdaFields): Uint8Array {
  const w = new Writer();
  const root = w.doc.documentElement;
  w.add(root, "realmCode", null, { code: "FR" });
  w.add(root, "typeId", null, { root: "2.16.840.1.113883.1.3", extension: "POCD_HD000040" });
  for (const template of TEMPLATE_IDS) w.add(root, "templateId", null, { root: template });
  w.ii(root, fields.documentId);
  w.code(root, "code", fields.typeCode);
  w.add(root, "title", fields.title);
  w.add(root, "effectiveTime", null, { value: cdaTime(fields.effectiveTime) });
  w.code(root, "confidentialityCode", TABLES.confidentiality);
  w.add(root, "languageCode", null, { code: "fr-FR" });
  w.ii(root, fields.setId, undefined, "setId");
  w.add(root, "versionNumber", null, { value: "1" });
  recordTarget(w, root, fields.patient);

  const author = w.add(root, "author");
  w.add(author, "time", null, { value: cdaTime(fields.effectiveTime) });
  const assigned = w.add(author, "assignedAuthor");
  w.ii(assigned, IDNAT_PS_OID, fields.author.nationalId);
  w.code(assigned, "code", authorSpecialty(fields.author.professionCode, fields.author.specialtyCode));
  w.personName(w.add(assigned, "assignedPerson"), fields.author);
  w.organisation(assigned, "representedOrganization", fields.custodian);
  w.organisation(w.add(w.add(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization", fields.custodian);

  const legal = w.add(root, "legalAuthenticator");
  w.add(legal, "time", null, { value: cdaTime(fields.effectiveTime) });
  w.add(legal, "signatureCode", null, { code: "S" });
  const entity = w.add(legal, "assignedEntity");
  w.ii(entity, IDNAT_PS_OID, fields.author.nationalId);
  w.personName(w.add(entity, "assignedPerson"), fields.author);

  const event = w.add(w.add(root, "documentationOf"), "serviceEvent");
  const period = w.add(event, "effectiveTime");
  w.add(period, "low", null, { value: cdaTime(fields.serviceStart) });
  w.add(period, "high", null, { value: cdaTime(fields.serviceEnd) });
  const performing = w.add(w.add(event, "performer", null, { typeCode: "PRF" }), "assignedEntity");
  w.ii(performing, IDNAT_PS_OID, fields.author.nationalId);
  w.personName(w.add(performing, "assignedPerson"), fields.author);
  w.code(w.organisation(performing, "representedOrganization", fields.custodian), "standardIndustryClassCode", fields.practiceSetting);

  const encounter = w.add(w.add(root, "componentOf"), "encompassingEncounter");
  const encounterPeriod = w.add(encounter, "effectiveTime");
  w.add(encounterPeriod, "low", null, { value: cdaTime(fields.serviceStart) });
  w.add(encounterPeriod, "high", null, { value: cdaTime(fields.serviceEnd) });
  const facility = w.add(w.add(encounter, "location"), "healthCareFacility");
  w.ii(facility, IDNAT_STRUCT_OID, fields.custodian.nationalId);
  w.code(facility, "code", fields.facilityType);

  const body = w.add(w.add(root, "component"), "nonXMLBody");
  w.add(body, "text", base64(fields.pdf), { mediaType: "application/pdf", representation: "B64" });
  const xml = new XMLSerializer().serializeToString(w.doc);
  return new TextEncoder().encode(`<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n${xml}`);
}
