// Photos and files (docs/protocol.md §11, docs/attachments.md): the photo pipeline, the
// attachment stream encryption, the descriptor, and the transfers.
export * from "./descriptor";
export * from "./errors";
export { pad, paddedSize, unpad } from "./padding";
export { inspectImage, metadataSegments, processPhoto, PHOTO_DEFAULTS } from "./photo";
export type { EncodedImage, PhotoOptions, ProcessedPhoto } from "./photo";
export { fetchAttachment, openBlob, thumbnailBlob } from "./receive";
export { encryptFile, isPhoto, sendDocument, sendPhoto } from "./send";
export type { Target } from "./send";
export { ciphertextSize, decryptBlob, encryptBlob, SCHEME } from "./stream";
export { AttachmentApi } from "./transfer";
export type { Progress, UploadState } from "./transfer";
