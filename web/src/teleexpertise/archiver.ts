// The archiver a new téléexpertise room names (the SDK's directory.archiver_device):
// the organisation's newest certified archiver device, read from the key-transparency
// log with every proof checked, and vouched for by the organisation's identity key.
import { KeyTransparencyError, type LogView } from "../client/logview";
import type { RoomDevice } from "../e2ee/state";
import { StepError } from "./cases";

const ORGANISATION = /^org:[0-9A-Za-z]{1,32}$/;

export async function archiverDevice(log: LogView, organisation: string): Promise<RoomDevice> {
  if (!ORGANISATION.test(organisation)) {
    throw new StepError("bad_field", "archiver: an organisation as org:IdNat_Struct.", "archiveur : un organisme sous la forme org:IdNat_Struct.");
  }
  let identity;
  try {
    identity = await log.identityOf(organisation, "archiver");
  } catch (error) {
    if (!(error instanceof KeyTransparencyError)) throw error;
    throw new StepError("no_archiver", `${organisation}: ${error.message}`, `${organisation} : ${error.message}`);
  }
  const devices = [...identity.devices.values()];
  if (!identity.identityKey || devices.length === 0) {
    throw new StepError("no_archiver", `${organisation} has no certified archiver.`, `${organisation} n'a pas d'archiveur certifié.`);
  }
  const newest = devices.reduce((a, b) => (b.index > a.index ? b : a));
  return { nationalId: organisation, device: newest.device, signKey: newest.signKey, crossSig: newest.crossSig, identityKey: identity.identityKey };
}
