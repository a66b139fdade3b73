// The téléexpertise steps from the browser, in the SDK's event format
// (client/teleexpertise/contents.py; docs/protocol.md §12.2, §12.3): each step is the
// end-to-end encrypted event sent with its step in one REST call. The server learns the
// lifecycle only; the patient, the question and the answer travel inside the envelope.
import type { Api } from "../api/http";
import { compactDescriptor, type Descriptor } from "../attachments";
import type { RelaisClient } from "../client/client";
import { b64u } from "../e2ee/bytes";
import { canonicalJson, type JsonObject } from "../e2ee/canonical";
import type { RoomDevice } from "../e2ee/state";

export const REQUIS_PROFESSIONS = ["10", "40", "50"];
export const MAX_REASON = 500;
export const MAX_QUESTION = 5000;
export const MAX_CLINICAL_DATA = 12_000;
export const MAX_NOTE = 2000;
export const MAX_ANSWER = 20_000;
export const MAX_ATTACHMENTS = 10;
export const MAX_EVENT_BYTES = 32_768;

export class StepError extends Error {
  constructor(
    readonly code: string,
    readonly english: string,
    readonly french: string,
  ) {
    super(english);
  }
}

export type State = "requested" | "accepted" | "declined" | "answered" | "closed" | "cancelled" | "expired";

export interface Transition {
  action: string;
  state: State;
  practitioner: string | null;
  seq: number | null;
  at: string;
}

/** What the server knows of a case (TELEEXPERTISE, §12.3). */
export interface CaseSummary {
  room: number;
  requerant: string;
  requis: string;
  state: State;
  requested_at: string;
  state_changed_at: string;
  deadline: string;
  open_questions: number;
  transitions: Transition[];
}

export interface Consent {
  obtainedOn: string; // YYYY-MM-DD
  method: "oral" | "written" | "electronic";
  givenBy: "patient" | "legal_representative";
  representative?: string;
}

interface DirectoryEntry {
  last_name: string;
  first_name: string;
  profession_code: string;
  profession_label?: string | null;
  specialty_code?: string | null;
}

/** ISO 8601 in UTC with its offset, to the second, as the SDK writes it. */
export function isoUtc(moment: Date): string {
  return moment.toISOString().replace(/\.\d{3}Z$/, "+00:00");
}

function text(value: string, field: string, limit: number, required = true): string {
  if (required && !value.trim()) throw new StepError("bad_field", `${field}: required.`, `${field} : obligatoire.`);
  if ([...value].length > limit) throw new StepError("bad_field", `${field}: at most ${limit} characters.`, `${field} : au plus ${limit} caractères.`);
  return value;
}

/** A professional as the directory describes them (PROFESSIONAL, §12.2). */
export async function professional(api: Api, nationalId: string): Promise<JsonObject> {
  const entry = await api.get<DirectoryEntry>(`directory/practitioners/${encodeURIComponent(nationalId)}`);
  return {
    national_id: nationalId,
    family_name: String(entry.last_name).toUpperCase(),
    given_name: String(entry.first_name),
    profession_code: String(entry.profession_code),
    profession_label: String(entry.profession_label ?? ""),
    specialty_code: String(entry.specialty_code ?? ""),
  };
}

export function consentContent(consent: Consent): JsonObject {
  const value: JsonObject = { decision: "given", obtained_on: consent.obtainedOn, method: consent.method, given_by: consent.givenBy };
  if (consent.givenBy === "legal_representative") value.representative = text(consent.representative ?? "", "representative", 200);
  return value;
}

function event(step: string, fields: JsonObject): JsonObject {
  return sized({ type: `teleexpertise.${step}`, v: 1, ...fields });
}

/** ``content`` when its canonical JSON fits one envelope (MAX_EVENT_BYTES). */
function sized(content: JsonObject): JsonObject {
  const size = canonicalJson(content).length;
  if (size > MAX_EVENT_BYTES) {
    throw new StepError("event_too_large", `The texts and files of this step take ${size} bytes, more than ${MAX_EVENT_BYTES}: shorten the texts or send fewer files.`, `Les textes et fichiers de cette étape font ${size} octets, plus que ${MAX_EVENT_BYTES} : raccourcissez les textes ou envoyez moins de fichiers.`);
  }
  return content;
}

export interface RequestFields {
  requerant: JsonObject;
  requis: JsonObject;
  patient: JsonObject;
  reason: string;
  question: string;
  clinicalData: string;
  consent: Consent;
  urgency: "routine" | "urgent";
  deadline: Date;
  attachments: Descriptor[];
}

/** The ``teleexpertise.request`` content, without documents (``requestWithDocuments``
 * adds them when a structure keeps them: request.ts). */
export function requestEvent(fields: RequestFields, now = new Date()): JsonObject {
  if (!REQUIS_PROFESSIONS.includes(String(fields.requis.profession_code))) {
    throw new StepError("requis_not_eligible", "Only a médecin, a sage-femme or a chirurgien-dentiste can be requis.", "Seul un médecin, une sage-femme ou un chirurgien-dentiste peut être requis.");
  }
  if (fields.deadline.getTime() <= now.getTime()) throw new StepError("bad_field", "deadline: a future date and time.", "deadline : une date et heure futures.");
  if (fields.attachments.length > MAX_ATTACHMENTS) throw new StepError("bad_field", `attachments: at most ${MAX_ATTACHMENTS}.`, `attachments : au plus ${MAX_ATTACHMENTS}.`);
  return event("request", {
    requerant: fields.requerant,
    requis: fields.requis,
    patient: fields.patient,
    reason: text(fields.reason, "reason", MAX_REASON),
    question: text(fields.question, "question", MAX_QUESTION),
    clinical_data: text(fields.clinicalData, "clinical_data", MAX_CLINICAL_DATA, false),
    consent: consentContent(fields.consent),
    urgency: fields.urgency,
    deadline: isoUtc(fields.deadline),
    requested_at: isoUtc(now),
    attachments: fields.attachments.map((d) => compactDescriptor(d) as unknown as JsonObject),
    documents: [],
  });
}

/** The request ``content`` with its PDF and CDA 75496-0 (§12.8), its size checked again. */
export function requestWithDocuments(content: JsonObject, documents: Descriptor[]): JsonObject {
  return sized({ ...content, documents: documents.map((d) => compactDescriptor(d) as unknown as JsonObject) });
}

export function acceptEvent(note: string): JsonObject {
  return event("accept", { note: text(note, "note", MAX_NOTE, false) });
}

export function declineEvent(reason: string): JsonObject {
  return event("decline", { reason: text(reason, "reason", MAX_NOTE) });
}

/** A clarification question of the requis; its id is new. */
export function clarificationRequestEvent(question: string, now = new Date()): JsonObject {
  return event("clarification_request", { question_id: crypto.randomUUID(), question: text(question, "question", MAX_QUESTION), asked_at: isoUtc(now) });
}

/** The requérant's answer to an open question, with the photos uploaded for it. */
export function clarificationAnswerEvent(questionId: string, answer: string, attachments: Descriptor[] = [], now = new Date()): JsonObject {
  if (attachments.length > MAX_ATTACHMENTS) throw new StepError("bad_field", `attachments: at most ${MAX_ATTACHMENTS}.`, `attachments : au plus ${MAX_ATTACHMENTS}.`);
  return event("clarification_answer", {
    question_id: text(questionId, "question_id", 64),
    answer: text(answer, "answer", MAX_ANSWER),
    answered_at: isoUtc(now),
    attachments: attachments.map((d) => compactDescriptor(d) as unknown as JsonObject),
  });
}

export function closeEvent(note: string): JsonObject {
  return event("close", { note: text(note, "note", MAX_NOTE, false) });
}

export function cancelEvent(reason: string): JsonObject {
  return event("cancel", { reason: text(reason, "reason", MAX_NOTE, false) });
}

export interface StepAnswer {
  teleexpertise: CaseSummary;
  step: Transition;
}

/** The request's room: a téléexpertise room with the requis (and ``archiver``, the
 * organisation's archiver device, if given), its encrypted profile (title and patient,
 * §12.6) set before the request is sent. */
export async function createCaseRoom(client: RelaisClient, requis: string, reason: string, patient: JsonObject, archiver: RoomDevice | null = null): Promise<number> {
  const title = [...`Téléexpertise : ${reason}`].slice(0, 200).join("");
  return client.createRoom("teleexpertise", [requis], "", { v: 1, type: "room_profile", title, patient }, archiver);
}

/** This device's own step, kept with the room's messages: the server does not send a
 * device its own envelopes back. */
async function keep(client: RelaisClient, room: number, id: string, answer: StepAnswer, content: JsonObject): Promise<void> {
  const list = (client.data.messages[String(room)] ??= []);
  if (!list.some((m) => m.id === id)) {
    list.push({ id, room, seq: answer.step.seq, sender: client.nationalId, senderDevice: client.device, text: `[${String(content.type)}]`, ts: Date.now(), own: true, state: "sent", flags: [], event: content });
  }
  await client.save();
}

/** Send the request event with its step (``POST teleexpertise``). */
export async function sendRequest(client: RelaisClient, api: Api, room: number, messageId: string, content: JsonObject): Promise<StepAnswer> {
  const body = await client.seal(room, content);
  const answer = await api.post<StepAnswer>("teleexpertise", { room, requis: (content.requis as JsonObject).national_id, deadline: content.deadline, id: messageId, body: b64u(body) });
  await keep(client, room, messageId, answer, content);
  return answer;
}

/** Any later step with its event (``POST teleexpertise/{room}/steps``). */
export async function sendStep(client: RelaisClient, api: Api, room: number, action: string, content: JsonObject, id: string = crypto.randomUUID()): Promise<StepAnswer> {
  const body = await client.seal(room, content);
  const answer = await api.post<StepAnswer>(`teleexpertise/${room}/steps`, { action, id, body: b64u(body) });
  await keep(client, room, id, answer, content);
  return answer;
}

export async function listCases(api: Api, role: "requerant" | "requis"): Promise<CaseSummary[]> {
  const answer = await api.get<{ teleexpertises: CaseSummary[] }>(`teleexpertise?role=${role}`);
  return answer.teleexpertises;
}
