// Who archives a room (docs/web.md, "Who archives a room"), as the SDK's
// client/archiver.py archiver_notice: the archiver the verified room state names is
// believed only once the log proves it an organisation's archiver device, with the same
// identity key and signing key; the organisation's name comes from the directory.
import type { Api } from "../api/http";
import { equal } from "../e2ee/bytes";
import type { RoomDevice } from "../e2ee/state";
import { KeyTransparencyError, type LogView } from "./logview";

export type ArchiverNotice = { proven: true; name: string; structureId: string } | { proven: false; reason: string };

export async function archiverNotice(log: LogView, api: Api, archiver: RoomDevice): Promise<ArchiverNotice> {
  try {
    const identity = await log.identityOf(archiver.nationalId, "archiver");
    const certified = identity.chain.devices.get(archiver.device);
    if (!identity.identityKey || !equal(identity.identityKey, archiver.identityKey) || !certified || certified.kind !== "archiver" || !equal(certified.signKey, archiver.signKey)) {
      return { proven: false, reason: `device ${archiver.device} of ${archiver.nationalId} is not certified as an organisation's archiver` };
    }
  } catch (error) {
    if (error instanceof KeyTransparencyError) return { proven: false, reason: error.message };
    throw error;
  }
  let name = archiver.nationalId;
  try {
    const entry = await api.get<{ last_name: string }>(`directory/practitioners/${encodeURIComponent(archiver.nationalId)}`);
    name = entry.last_name || name;
  } catch {
    // the organisation's number stays shown
  }
  return { proven: true, name, structureId: archiver.nationalId.replace(/^org:/, "") };
}
