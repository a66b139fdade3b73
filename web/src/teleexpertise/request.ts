// The request's own documents, written in the browser (docs/protocol.md §12.8) as the
// SDK's report.py request_documents and sdk.py _with_documents write them: when a
// structure keeps them (the organisation whose archiver the room names), the request
// as a PDF and as a CDA R2 niveau 1 type 75496-0 "Demande d'acte de télémédecine", the
// requérant as author and legal authenticator, both encrypted and uploaded with the
// request's message id, their descriptors in the request's `documents`. Without an
// archiver the request carries no documents, as the SDK's without a structure. The PDF
// and CDA writers load only when documents are written (documents.ts).
import type { Api } from "../api/http";
import type { AttachmentApi, Descriptor } from "../attachments";
import { archiverNotice } from "../client/archiver";
import type { LogView } from "../client/logview";
import type { JsonObject } from "../e2ee/canonical";
import type { RoomDevice } from "../e2ee/state";
import { requestWithDocuments, StepError } from "./cases";
import type { Organisation } from "./cda";
import { display, type DocumentPair, requestEntry, requestHeader, uploadPair, writeDocuments } from "./documents";
import type { Transcript } from "./pdf";

export const REQUEST_TYPE = "75496-0"; // Demande d'acte de télémédecine (J07)
export const REQUEST_PDF_NAME = "demande-teleexpertise.pdf";
export const REQUEST_CDA_NAME = "demande-teleexpertise.xml";

/** The transcript the SDK's request_documents prints; ``request`` is the
 * ``teleexpertise.request`` content (its photos listed, without its documents). */
export function requestTranscript(request: JsonObject, time: (moment: Date) => string): Transcript {
  const requerant = display(request.requerant as JsonObject);
  return {
    title: "Demande de téléexpertise",
    header: [...requestHeader(request, time), ["Motif", String(request.reason)]],
    entries: [requestEntry(request)],
    footer: `Téléexpertise — demande de ${requerant}`,
    author: requerant,
    subject: "Demande d'acte de télémédecine (téléexpertise)",
    keywords: ["téléexpertise", "demande", REQUEST_TYPE],
  };
}

/** The PDF and the CDA 75496-0 of ``request``, made on the requérant's device. */
export async function requestDocuments(request: JsonObject, custodian: Organisation): Promise<DocumentPair> {
  const requestedAt = new Date(String(request.requested_at));
  return writeDocuments({
    transcript: (time) => requestTranscript(request, time),
    typeCode: REQUEST_TYPE,
    title: "Demande de téléexpertise",
    patient: request.patient as JsonObject,
    author: request.requerant as JsonObject,
    at: requestedAt,
    start: requestedAt,
    custodian,
  });
}

/** The structure that keeps the documents of a room that will name ``archiver``: the
 * organisation whose archiver device the log proves it, with its name from the
 * directory (the SDK's uploads.custodian_of). */
export async function archiverCustodian(log: LogView, api: Api, archiver: RoomDevice): Promise<Organisation> {
  const notice = await archiverNotice(log, api, archiver);
  if (!notice.proven) throw new StepError("no_archiver", `${archiver.nationalId}: ${notice.reason}`, `${archiver.nationalId} : ${notice.reason}`);
  return { nationalId: notice.structureId, name: notice.name };
}

/** ``content`` with its documents when a structure keeps them (``custodian``), as it is
 * otherwise. Each upload is pushed onto ``uploaded`` once stored, for the caller to
 * withdraw if the request is not sent. */
export async function withRequestDocuments(
  files: AttachmentApi,
  room: number,
  messageId: string,
  content: JsonObject,
  custodian: Organisation | null,
  uploaded: Descriptor[],
  progress: (stage: "documents" | "upload") => void = () => {},
): Promise<JsonObject> {
  if (!custodian) return content;
  progress("documents");
  const documents = await requestDocuments(content, custodian);
  progress("upload");
  const pair = await uploadPair(files, room, messageId, documents, { pdf: REQUEST_PDF_NAME, cda: REQUEST_CDA_NAME }, uploaded);
  return requestWithDocuments(content, pair);
}
