// The compte rendu written in the browser (docs/protocol.md §12.8), as the SDK's
// client/teleexpertise/report.py and sdk.py report(): a PDF a person reads and a CDA R2
// niveau 1 type 85208-7 that embeds it, both encrypted and uploaded as attachments of
// the `teleexpertise.report` event, which is sent with its step; then the requis' TE2
// act is recorded (§12.7). The PDF and CDA code (pdf-lib, fontkit, the fonts and the
// value sets) loads on first use, in its own chunk.
import type { Api } from "../api/http";
import { AttachmentApi, buildDescriptor, compactDescriptor, type Descriptor, encryptFile } from "../attachments";
import type { RelaisClient } from "../client/client";
import { b64u, unb64u } from "../e2ee/bytes";
import { canonicalJson, type JsonObject } from "../e2ee/canonical";
import { isoUtc, MAX_ANSWER, MAX_EVENT_BYTES, StepError, type StepAnswer } from "./cases";
import type { Organisation } from "./cda";
import { type LedgerEntry, recordAct, zoneOfPostcode } from "./ledger";
import type { Transcript, TranscriptEntry } from "./pdf";
import type { VerifiedCase } from "./verify";

export const REPORT_TYPE = "85208-7"; // CR de télémédecine (J07)
export const PDF_NAME = "compte-rendu-teleexpertise.pdf";
export const CDA_NAME = "compte-rendu-teleexpertise.xml";
const PRACTICE_SETTING = "AMBULATOIRE"; // J04
const FACILITY_TYPE = "SA07"; // J02: cabinet individuel
const METHODS: Record<string, string> = { oral: "oralement", written: "par écrit", electronic: "électroniquement" };

export interface ReportDocuments {
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

function display(p: JsonObject): string {
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
export function patientLines(p: JsonObject): [string, string][] {
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

function fileNote(d: JsonObject): string {
  return `Pièce jointe : ${String(d.name ?? "(sans nom)")}, ${String(d.mime)}, ${String(d.size)} octets, SHA-256 ${String(d.sha256)}`;
}

/** The transcript the SDK's report_documents prints, from the case verified here. */
export function reportTranscript(found: VerifiedCase, answer: string, reportedAt: Date, time: (d: Date) => string): Transcript {
  const request = found.request;
  if (!request) throw new StepError("unknown_teleexpertise", "This room has no téléexpertise known to this device.", "Ce salon n'a pas de téléexpertise connue de cet appareil.");
  const requerant = request.requerant as JsonObject;
  const requis = request.requis as JsonObject;
  let text = `Motif : ${String(request.reason)}\n\nQuestion : ${String(request.question)}`;
  if (request.clinical_data) text += `\n\nDonnées cliniques : ${String(request.clinical_data)}`;
  const entries: TranscriptEntry[] = [{ time: new Date(String(request.requested_at)), author: display(requerant), authorDetail: idLabel(String(requerant.national_id)), text, notes: (request.attachments as JsonObject[]).map(fileNote) }];
  const answers = new Map(found.events.filter((e) => e.action === "clarification_answer").map((e) => [String(e.content.question_id), e.content]));
  for (const event of found.events.filter((e) => e.action === "clarification_request")) {
    entries.push({ time: new Date(String(event.content.asked_at)), author: display(requis), authorDetail: idLabel(String(requis.national_id)), text: `Demande de précision : ${String(event.content.question)}`, notes: [] });
    const reply = answers.get(String(event.content.question_id));
    if (reply) entries.push({ time: new Date(String(reply.answered_at)), author: display(requerant), authorDetail: idLabel(String(requerant.national_id)), text: `Précision : ${String(reply.answer)}`, notes: (reply.attachments as JsonObject[]).map(fileNote) });
  }
  entries.push({ time: reportedAt, author: display(requis), authorDetail: idLabel(String(requis.national_id)), text: `Réponse (compte rendu) : ${answer}`, notes: [] });
  const urgency = request.urgency === "urgent" ? "urgente" : "non urgente";
  return {
    title: "Compte rendu de téléexpertise",
    header: [
      ...patientLines(request.patient as JsonObject),
      ["Requérant", professionalLine(requerant)],
      ["Requis", professionalLine(requis)],
      ["Demande du", `${time(new Date(String(request.requested_at)))} (${urgency})`],
      ["Réponse souhaitée avant", time(new Date(String(request.deadline)))],
      ["Consentement", consentLine(request.consent as JsonObject)],
      ["Réponse du", time(reportedAt)],
      ["Motif", String(request.reason)],
    ],
    entries,
    footer: `Téléexpertise — compte rendu établi par ${display(requis)}`,
    author: display(requis),
    subject: "CR de télémédecine (téléexpertise)",
    keywords: ["téléexpertise", "compte rendu", REPORT_TYPE],
  };
}

/** The PDF and the CDA 85208-7 of the answer, made on this device. */
export async function reportDocuments(found: VerifiedCase, answer: string, reportedAt: Date, custodian: Organisation): Promise<ReportDocuments> {
  const [{ transcriptPdf, printedTime }, cda] = await Promise.all([import("./pdf"), import("./cda")]);
  const request = found.request!;
  const requis = request.requis as JsonObject;
  const pdf = await transcriptPdf(reportTranscript(found, answer, reportedAt, printedTime));
  const documentId = cda.newOid();
  const xml = cda.buildCda({
    documentId,
    setId: cda.newOid(),
    typeCode: cda.codeIn("J07", REPORT_TYPE),
    title: "Compte rendu de téléexpertise",
    effectiveTime: reportedAt,
    patient: request.patient as JsonObject,
    author: { nationalId: String(requis.national_id), familyName: String(requis.family_name), givenName: String(requis.given_name), professionCode: String(requis.profession_code), specialtyCode: String(requis.specialty_code ?? "") },
    custodian,
    serviceStart: new Date(String(request.requested_at)),
    serviceEnd: reportedAt,
    practiceSetting: cda.codeIn("J04", PRACTICE_SETTING),
    facilityType: cda.codeIn("J02", FACILITY_TYPE),
    pdf,
  });
  return { pdf, cda: xml, documentId };
}

/** A structure's IdNat_Struct and name as typed, checked: the CDA's custodian. */
export function checkOrganisation(nationalId: string, name: string): Organisation {
  const id = nationalId.trim();
  if (!/^[0-9A-Za-z]{1,64}$/.test(id) || !name.trim() || name.length > 256) {
    throw new StepError("no_custodian", "Give the national id (IdNat_Struct) and the name of the structure that keeps the report.", "Indiquez l'identifiant national (IdNat_Struct) et le nom de la structure qui conserve le compte rendu.");
  }
  return { nationalId: id, name: name.trim() };
}

async function uploadFile(files: AttachmentApi, room: number, messageId: string, data: Uint8Array, mime: string, name: string): Promise<Descriptor> {
  const encrypted = await encryptFile(data);
  const blob = await files.uploadBlob(encrypted.blob, encrypted.sha256, { room, messageId });
  return buildDescriptor({ blob, key: encrypted.key, sha256: encrypted.sha256, size: encrypted.size, mime, name });
}

export interface SentReport {
  answer: StepAnswer;
  documents: ReportDocuments;
  act: LedgerEntry;
}

/** Send the answer (the requis): the documents as encrypted attachments of the report
 * event, sent with its step; then the TE2 act. Nothing is sent when a check fails; the
 * uploads are withdrawn if the step is refused. */
export async function sendReport(client: RelaisClient, api: Api, found: VerifiedCase, answer: string, custodian: Organisation, progress: (stage: "documents" | "upload" | "send" | "act") => void = () => {}): Promise<SentReport> {
  const request = found.request;
  if (!request || found.state !== "accepted" || (request.requis as JsonObject).national_id !== client.nationalId) {
    throw new StepError("transition_refused", "Only the requis of an accepted request sends its report.", "Seul le requis d'une demande acceptée envoie son compte rendu.");
  }
  if (!answer.trim() || [...answer].length > MAX_ANSWER) throw new StepError("bad_field", `answer: 1 to ${MAX_ANSWER} characters.`, `réponse : 1 à ${MAX_ANSWER} caractères.`);
  const reportedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  progress("documents");
  const documents = await reportDocuments(found, answer, reportedAt, custodian);
  const messageId = crypto.randomUUID();
  const files = new AttachmentApi(client.data.token);
  const uploaded: Descriptor[] = [];
  progress("upload");
  let sent: StepAnswer;
  let content: JsonObject;
  try {
    uploaded.push(await uploadFile(files, found.room, messageId, documents.pdf, "application/pdf", PDF_NAME));
    uploaded.push(await uploadFile(files, found.room, messageId, documents.cda, "application/xml", CDA_NAME));
    content = { type: "teleexpertise.report", v: 1, answer, reported_at: isoUtc(reportedAt), documents: uploaded.map((d) => compactDescriptor(d) as unknown as JsonObject) };
    const size = canonicalJson(content).length;
    if (size > MAX_EVENT_BYTES) throw new StepError("event_too_large", `The report takes ${size} bytes, more than ${MAX_EVENT_BYTES}: shorten the answer.`, `Le compte rendu fait ${size} octets, plus que ${MAX_EVENT_BYTES} : raccourcissez la réponse.`);
    progress("send");
    const body = await client.seal(found.room, content);
    sent = await api.post<StepAnswer>(`teleexpertise/${found.room}/steps`, { action: "report", id: messageId, body: b64u(body) });
  } catch (error) {
    for (const d of uploaded) await files.abortQuietly(d.blob);
    throw error;
  }
  const list = (client.data.messages[String(found.room)] ??= []);
  list.push({ id: messageId, room: found.room, seq: sent.step.seq, sender: client.nationalId, senderDevice: client.device, text: "[teleexpertise.report]", ts: Date.now(), own: true, state: "sent", flags: [], event: content });
  await client.save();
  progress("act");
  const act = await recordTe2(client, api, found, reportedAt);
  return { answer: sent, documents, act };
}

/** This device's day, as the SDK's ``reported_at.astimezone().date()``. */
export function localDay(moment: Date): string {
  return `${moment.getFullYear()}-${String(moment.getMonth() + 1).padStart(2, "0")}-${String(moment.getDate()).padStart(2, "0")}`;
}

async function recordTe2(client: RelaisClient, api: Api, found: VerifiedCase, reportedAt: Date): Promise<LedgerEntry> {
  const request = found.request!;
  const me = await api.get<{ postcode?: string | null }>(`directory/practitioners/${encodeURIComponent(client.nationalId)}`);
  return recordAct(api, unb64u(client.data.accountSecret), client.nationalId, {
    code: "TE2",
    room: found.room,
    patient: request.patient as JsonObject,
    requerant: String((request.requerant as JsonObject).national_id),
    requis: String((request.requis as JsonObject).national_id),
    zone: zoneOfPostcode(me.postcode ?? ""),
    day: localDay(reportedAt),
  });
}
