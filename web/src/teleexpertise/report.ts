// The compte rendu written in the browser (docs/protocol.md §12.8), as the SDK's
// client/teleexpertise/report.py and sdk.py report(): a PDF a person reads and a CDA R2
// niveau 1 type 85208-7 that embeds it, both encrypted and uploaded as attachments of
// the `teleexpertise.report` event, which is sent with its step; then the requis' TE2
// act is recorded (§12.7). What the request's documents share with it is in
// documents.ts, which loads the PDF and CDA code (pdf-lib, fontkit, the fonts and the
// value sets) on first use, in its own chunk.
import type { Api } from "../api/http";
import { AttachmentApi, compactDescriptor, type Descriptor } from "../attachments";
import type { RelaisClient } from "../client/client";
import { b64u, unb64u } from "../e2ee/bytes";
import { canonicalJson, type JsonObject } from "../e2ee/canonical";
import { isoUtc, MAX_ANSWER, MAX_EVENT_BYTES, StepError, type StepAnswer } from "./cases";
import type { Organisation } from "./cda";
import { display, type DocumentPair, fileNote, idLabel, requestEntry, requestHeader, uploadPair, writeDocuments } from "./documents";
import { type LedgerEntry, recordAct, zoneOfPostcode } from "./ledger";
import type { Transcript, TranscriptEntry } from "./pdf";
import type { VerifiedCase } from "./verify";

export const REPORT_TYPE = "85208-7"; // CR de télémédecine (J07)
export const PDF_NAME = "compte-rendu-teleexpertise.pdf";
export const CDA_NAME = "compte-rendu-teleexpertise.xml";

/** The transcript the SDK's report_documents prints, from the case verified here. */
export function reportTranscript(found: VerifiedCase, answer: string, reportedAt: Date, time: (d: Date) => string): Transcript {
  const request = found.request;
  if (!request) throw new StepError("unknown_teleexpertise", "This room has no téléexpertise known to this device.", "Ce salon n'a pas de téléexpertise connue de cet appareil.");
  const requerant = request.requerant as JsonObject;
  const requis = request.requis as JsonObject;
  const entries: TranscriptEntry[] = [requestEntry(request)];
  const answers = new Map(found.events.filter((e) => e.action === "clarification_answer").map((e) => [String(e.content.question_id), e.content]));
  for (const event of found.events.filter((e) => e.action === "clarification_request")) {
    entries.push({ time: new Date(String(event.content.asked_at)), author: display(requis), authorDetail: idLabel(String(requis.national_id)), text: `Demande de précision : ${String(event.content.question)}`, notes: [] });
    const reply = answers.get(String(event.content.question_id));
    if (reply) entries.push({ time: new Date(String(reply.answered_at)), author: display(requerant), authorDetail: idLabel(String(requerant.national_id)), text: `Précision : ${String(reply.answer)}`, notes: (reply.attachments as JsonObject[]).map(fileNote) });
  }
  entries.push({ time: reportedAt, author: display(requis), authorDetail: idLabel(String(requis.national_id)), text: `Réponse (compte rendu) : ${answer}`, notes: [] });
  return {
    title: "Compte rendu de téléexpertise",
    header: [...requestHeader(request, time), ["Réponse du", time(reportedAt)], ["Motif", String(request.reason)]],
    entries,
    footer: `Téléexpertise — compte rendu établi par ${display(requis)}`,
    author: display(requis),
    subject: "CR de télémédecine (téléexpertise)",
    keywords: ["téléexpertise", "compte rendu", REPORT_TYPE],
  };
}

/** The PDF and the CDA 85208-7 of the answer, made on this device. */
export async function reportDocuments(found: VerifiedCase, answer: string, reportedAt: Date, custodian: Organisation): Promise<DocumentPair> {
  const request = found.request!;
  return writeDocuments({
    transcript: (time) => reportTranscript(found, answer, reportedAt, time),
    typeCode: REPORT_TYPE,
    title: "Compte rendu de téléexpertise",
    patient: request.patient as JsonObject,
    author: request.requis as JsonObject,
    at: reportedAt,
    start: new Date(String(request.requested_at)),
    custodian,
  });
}

/** A structure's IdNat_Struct and name as typed, checked: the CDA's custodian. */
export function checkOrganisation(nationalId: string, name: string): Organisation {
  const id = nationalId.trim();
  if (!/^[0-9A-Za-z]{1,64}$/.test(id) || !name.trim() || name.length > 256) {
    throw new StepError("no_custodian", "Give the national id (IdNat_Struct) and the name of the structure that keeps the report.", "Indiquez l'identifiant national (IdNat_Struct) et le nom de la structure qui conserve le compte rendu.");
  }
  return { nationalId: id, name: name.trim() };
}

export interface SentReport {
  answer: StepAnswer;
  documents: DocumentPair;
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
    await uploadPair(files, found.room, messageId, documents, { pdf: PDF_NAME, cda: CDA_NAME }, uploaded);
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
