// What the request's documents and the report's share (docs/protocol.md §12.8), as the
// SDK's client/teleexpertise/report.py: the lines that describe the request in both
// PDFs, the PDF and its CDA R2 niveau 1 written together, and their upload as encrypted
// attachments. The PDF and CDA writers (pdf-lib, fontkit, the fonts, the value sets)
// are imported here only when documents are written: a separate chunk of the build.
import { type AttachmentApi, buildDescriptor, type Descriptor, encryptFile } from "../attachments";
import type { JsonObject } from "../e2ee/canonical";
import type { Organisation } from "./cda";
import type { Transcript, TranscriptEntry } from "./pdf";

const PRACTICE_SETTING = "AMBULATOIRE"; // J04
const FACILITY_TYPE = "SA07"; // J02: cabinet individuel
const METHODS: Record<string, string> = { oral: "oralement", written: "par écrit", electronic: "électroniquement" };
const PDF_MIME = "application/pdf";
const CDA_MIME = "application/xml";

export interface DocumentPair {
  pdf: Uint8Array;
  cda: Uint8Array;
  documentId: string;
}

/** ``RPPS 10001987659`` for an IdNat_PS ``8…``, ``ADELI …`` for ``0…``. */
export function idLabel(nationalId: string): string {
  if (nationalId.startsWith("8") && nationalId.length === 12) return `RPPS ${nationalId.slice(1)}`;
  if (nationalId.startsWith("0") && nationalId.length === 10) return `ADELI ${nationalId.slice(1)}`;
  return `IdNat ${nationalId}`;
}

/** A PROFESSIONAL of §12.2 as the SDK's ``Professional.display`` writes it. */
export function display(p: JsonObject): string {
  const label = p.profession_label ? ` (${String(p.profession_label)})` : "";
  return `${String(p.given_name)} ${String(p.family_name)}${label}`.trim();
}

function professionalLine(p: JsonObject): string {
  return `${display(p)} — ${idLabel(String(p.national_id))}`;
}

function frenchDate(iso: string): string {
  const [y, m, d] = iso.split("-");
  return `${d}/${m}/${y}`;
}

/** report.py patient_lines: traits always, the matricule INS only when qualified. */
function patientLines(p: JsonObject): [string, string][] {
  const sex = ({ F: "F", M: "M", U: "indéterminé" } as Record<string, string>)[String(p.sex)] ?? String(p.sex);
  const given = (p.birth_given_names as string[]).map(String);
  let names = `${String(p.birth_family_name)} ${given.join(" ")}`;
  if (p.used_family_name || p.used_given_name) names += ` (nom utilisé : ${String(p.used_given_name ?? given[0])} ${String(p.used_family_name ?? p.birth_family_name)})`;
  const lines: [string, string][] = [
    ["Patient", names],
    ["Né(e) le", `${frenchDate(String(p.birth_date))}, sexe ${sex}`],
  ];
  if (p.birthplace) lines.push(["Lieu de naissance (INSEE)", String(p.birthplace)]);
  if (p.status === "QUAL" && p.matricule && p.oid) lines.push(["INS", `${String(p.matricule)} (OID ${String(p.oid)}), identité qualifiée`]);
  else lines.push(["INS", `identité ${String(p.status)}, non qualifiée : traits seuls, sans matricule INS`]);
  return lines;
}

function consentLine(c: JsonObject): string {
  const by = c.given_by === "patient" ? "le patient" : `représentant légal ${String(c.representative ?? "")}`;
  return `Consentement donné ${METHODS[String(c.method)] ?? String(c.method)} par ${by} le ${frenchDate(String(c.obtained_on))}`;
}

/** One line per file an event carries: name, type, size, SHA-256. */
export function fileNote(d: JsonObject): string {
  return `Pièce jointe : ${String(d.name ?? "(sans nom)")}, ${String(d.mime)}, ${String(d.size)} octets, SHA-256 ${String(d.sha256)}`;
}

/** report.py _request_entries: the requérant's reason, question and clinical data, and
 * the files the request carries. ``request`` is a ``teleexpertise.request`` content. */
export function requestEntry(request: JsonObject): TranscriptEntry {
  const requerant = request.requerant as JsonObject;
  let text = `Motif : ${String(request.reason)}\n\nQuestion : ${String(request.question)}`;
  if (request.clinical_data) text += `\n\nDonnées cliniques : ${String(request.clinical_data)}`;
  return { time: new Date(String(request.requested_at)), author: display(requerant), authorDetail: idLabel(String(requerant.national_id)), text, notes: (request.attachments as JsonObject[]).map(fileNote) };
}

/** report.py _header: the patient, both professionals, when, and the consent. */
export function requestHeader(request: JsonObject, time: (moment: Date) => string): [string, string][] {
  const urgency = request.urgency === "urgent" ? "urgente" : "non urgente";
  return [
    ...patientLines(request.patient as JsonObject),
    ["Requérant", professionalLine(request.requerant as JsonObject)],
    ["Requis", professionalLine(request.requis as JsonObject)],
    ["Demande du", `${time(new Date(String(request.requested_at)))} (${urgency})`],
    ["Réponse souhaitée avant", time(new Date(String(request.deadline)))],
    ["Consentement", consentLine(request.consent as JsonObject)],
  ];
}

export interface DocumentFields {
  transcript: (time: (moment: Date) => string) => Transcript; // given the printed time of this device
  typeCode: string; // J07
  title: string;
  patient: JsonObject;
  author: JsonObject; // a PROFESSIONAL: author, legal authenticator and performer
  at: Date;
  start: Date;
  custodian: Organisation;
}

/** report.py _cda with its PDF: the PDF, then the CDA that embeds it (the writers are
 * loaded now, on first use). */
export async function writeDocuments(fields: DocumentFields): Promise<DocumentPair> {
  const [{ transcriptPdf, printedTime }, cda] = await Promise.all([import("./pdf"), import("./cda")]);
  const pdf = await transcriptPdf(fields.transcript(printedTime));
  const documentId = cda.newOid();
  const author = fields.author;
  const xml = cda.buildCda({
    documentId,
    setId: cda.newOid(),
    typeCode: cda.codeIn("J07", fields.typeCode),
    title: fields.title,
    effectiveTime: fields.at,
    patient: fields.patient,
    author: { nationalId: String(author.national_id), familyName: String(author.family_name), givenName: String(author.given_name), professionCode: String(author.profession_code), specialtyCode: String(author.specialty_code ?? "") },
    custodian: fields.custodian,
    serviceStart: fields.start,
    serviceEnd: fields.at,
    practiceSetting: cda.codeIn("J04", PRACTICE_SETTING),
    facilityType: cda.codeIn("J02", FACILITY_TYPE),
    pdf,
  });
  return { pdf, cda: xml, documentId };
}

/** Encrypt and upload one document for the message ``messageId`` of ``room``. */
export async function uploadDocument(files: AttachmentApi, room: number, messageId: string, data: Uint8Array, mime: string, name: string): Promise<Descriptor> {
  const encrypted = await encryptFile(data);
  const blob = await files.uploadBlob(encrypted.blob, encrypted.sha256, { room, messageId });
  return buildDescriptor({ blob, key: encrypted.key, sha256: encrypted.sha256, size: encrypted.size, mime, name });
}

/** Upload the PDF then the CDA, each descriptor pushed onto ``uploaded`` as soon as its
 * blob is stored, so the caller withdraws exactly what was stored if a later call fails. */
export async function uploadPair(files: AttachmentApi, room: number, messageId: string, documents: DocumentPair, names: { pdf: string; cda: string }, uploaded: Descriptor[]): Promise<[Descriptor, Descriptor]> {
  const pdf = await uploadDocument(files, room, messageId, documents.pdf, PDF_MIME, names.pdf);
  uploaded.push(pdf);
  const cda = await uploadDocument(files, room, messageId, documents.cda, CDA_MIME, names.cda);
  uploaded.push(cda);
  return [pdf, cda];
}
