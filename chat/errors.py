"""Stable error codes shared by the WebSocket protocol and the REST API.

Clients branch on ``code``; the English and French messages are for people.
The list is documented in docs/protocol.md §6.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LARGE = "frame_too_large"
    BODY_TOO_LARGE = "body_too_large"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_FAILED = "auth_failed"
    NOT_MEMBER = "not_member"
    NOT_ADMIN = "not_admin"
    NOT_FOUND = "not_found"
    BAD_SEQUENCE = "bad_sequence"
    BAD_REQUEST = "bad_request"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVER_BUSY = "server_busy"
    INTERNAL = "internal"
    # Attachments (docs/protocol.md, "Attachments")
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    ATTACHMENT_NOT_FOUND = "attachment_not_found"
    UPLOAD_PART_INVALID = "upload_part_invalid"
    UPLOAD_INCOMPLETE = "upload_incomplete"
    ATTACHMENT_HASH_MISMATCH = "attachment_hash_mismatch"
    BAD_STATE_EVENT = "bad_state_event"
    STALE_STATE = "stale_state"
    KEY_NOT_CERTIFIED = "key_not_certified"
    BAD_KEYS = "bad_keys"
    PUSH_DISABLED = "push_disabled"
    BAD_PUSH_SUBSCRIPTION = "bad_push_subscription"
    PSC_NOT_CONFIGURED = "psc_not_configured"
    PSC_STATE_MISMATCH = "psc_state_mismatch"
    PSC_NONCE_MISMATCH = "psc_nonce_mismatch"
    PSC_ACR_INSUFFICIENT = "psc_acr_insufficient"
    PSC_TOKEN_INVALID = "psc_token_invalid"  # noqa: S105 (an error code, not a secret)
    PSC_TOKEN_EXPIRED = "psc_token_expired"  # noqa: S105 (an error code, not a secret)
    PSC_PROVIDER_ERROR = "psc_provider_error"
    PSC_LOGIN_EXPIRED = "psc_login_expired"
    PSC_IDENTITY_REFUSED = "psc_identity_refused"
    PSC_SESSION_ENDED = "psc_session_ended"
    NOT_IN_DIRECTORY = "not_in_directory"
    # Téléexpertise (docs/protocol.md §12)
    TRANSITION_REFUSED = "transition_refused"
    ROLE_REFUSED = "role_refused"
    REQUIS_NOT_ELIGIBLE = "requis_not_eligible"
    BILLING_LIMIT_REACHED = "billing_limit_reached"


MESSAGES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.BAD_JSON: (
        "The frame is not a valid JSON object.",
        "La trame n'est pas un objet JSON valide.",
    ),
    ErrorCode.BAD_FRAME: (
        "A field is missing, malformed or unknown.",
        "Un champ est manquant, mal formé ou inconnu.",
    ),
    ErrorCode.UNKNOWN_TYPE: (
        "Unknown frame type.",
        "Type de trame inconnu.",
    ),
    ErrorCode.FRAME_TOO_LARGE: (
        "The frame is larger than allowed.",
        "La trame dépasse la taille autorisée.",
    ),
    ErrorCode.BODY_TOO_LARGE: (
        "The message is larger than allowed; send large content as an attachment.",
        "Le message dépasse la taille autorisée ; envoyez les gros contenus en pièce jointe.",
    ),
    ErrorCode.NOT_AUTHENTICATED: (
        "Authenticate first.",
        "Authentifiez-vous d'abord.",
    ),
    ErrorCode.ALREADY_AUTHENTICATED: (
        "This connection is already authenticated.",
        "Cette connexion est déjà authentifiée.",
    ),
    ErrorCode.AUTH_FAILED: (
        "Unknown or revoked device token.",
        "Jeton d'appareil inconnu ou révoqué.",
    ),
    ErrorCode.NOT_MEMBER: (
        "You are not a member of this room.",
        "Vous n'êtes pas membre de ce salon.",
    ),
    ErrorCode.NOT_ADMIN: (
        "Only an administrator of the room may do this.",
        "Seul un administrateur du salon peut faire cela.",
    ),
    ErrorCode.NOT_FOUND: (
        "Not found.",
        "Introuvable.",
    ),
    ErrorCode.BAD_SEQUENCE: (
        "The sequence number is out of range for this room.",
        "Le numéro de séquence est hors limites pour ce salon.",
    ),
    ErrorCode.BAD_REQUEST: (
        "The request is invalid.",
        "La requête est invalide.",
    ),
    ErrorCode.CONFLICT: (
        "The request conflicts with the current state.",
        "La requête est en conflit avec l'état actuel.",
    ),
    ErrorCode.RATE_LIMITED: (
        "Too many requests; slow down.",
        "Trop de requêtes ; ralentissez.",
    ),
    ErrorCode.TOO_MANY_CONNECTIONS: (
        "Too many connections for this device or this address; close some first.",
        "Trop de connexions pour cet appareil ou cette adresse ; fermez-en d'abord.",
    ),
    ErrorCode.SERVER_BUSY: (
        "The server is busy; retry with the same message id.",
        "Le serveur est occupé ; réessayez avec le même identifiant de message.",
    ),
    ErrorCode.INTERNAL: (
        "Unexpected server error; nothing was stored.",
        "Erreur inattendue du serveur ; rien n'a été enregistré.",
    ),
    ErrorCode.ATTACHMENT_TOO_LARGE: (
        "The attachment is larger than the server accepts.",
        "La pièce jointe dépasse la taille acceptée par le serveur.",
    ),
    ErrorCode.QUOTA_EXCEEDED: (
        "Your attachment storage quota is full; older attachments are freed as they expire.",
        "Votre quota de stockage de pièces jointes est atteint ; les plus anciennes sont "
        "libérées à leur expiration.",
    ),
    ErrorCode.ATTACHMENT_NOT_FOUND: (
        "No such attachment, or it was not sent to a room you can read.",
        "Pièce jointe introuvable, ou envoyée dans un salon que vous ne pouvez pas lire.",
    ),
    ErrorCode.UPLOAD_PART_INVALID: (
        "This upload part has the wrong index or size.",
        "Cette partie d'envoi a un numéro ou une taille incorrects.",
    ),
    ErrorCode.UPLOAD_INCOMPLETE: (
        "Some parts of the upload are missing; send them, then complete it.",
        "Des parties de l'envoi manquent ; envoyez-les, puis terminez-le.",
    ),
    ErrorCode.ATTACHMENT_HASH_MISMATCH: (
        "The uploaded file does not match its SHA-256; the upload was discarded.",
        "Le fichier envoyé ne correspond pas à son SHA-256 ; l'envoi a été abandonné.",
    ),
    ErrorCode.BAD_STATE_EVENT: (
        "The room-state event is malformed, badly signed or not allowed.",
        "L'événement d'état du salon est mal formé, mal signé ou non autorisé.",
    ),
    ErrorCode.STALE_STATE: (
        "The room state has changed; fetch the new events and sign again.",
        "L'état du salon a changé ; récupérez les nouveaux événements et signez à nouveau.",
    ),
    ErrorCode.KEY_NOT_CERTIFIED: (
        "A device key is not certified (or was revoked) in the key-transparency log.",
        "Une clé d'appareil n'est pas certifiée (ou a été révoquée) dans le journal des clés.",
    ),
    ErrorCode.BAD_KEYS: (
        "The device keys or their signature are invalid.",
        "Les clés de l'appareil ou leur signature sont invalides.",
    ),
    ErrorCode.PUSH_DISABLED: (
        "Web Push is not configured on this server.",
        "Les notifications Web Push ne sont pas configurées sur ce serveur.",
    ),
    ErrorCode.BAD_PUSH_SUBSCRIPTION: (
        "The push subscription is invalid or its push service is not accepted.",
        "L'abonnement aux notifications est invalide ou son service de notification "
        "n'est pas accepté.",
    ),
    ErrorCode.PSC_NOT_CONFIGURED: (
        "Pro Santé Connect login is not configured on this server.",
        "La connexion Pro Santé Connect n'est pas configurée sur ce serveur.",
    ),
    ErrorCode.PSC_STATE_MISMATCH: (
        "This login answer does not belong to a login started in this browser; start again.",
        "Cette réponse de connexion ne correspond à aucune connexion commencée dans ce "
        "navigateur ; recommencez.",
    ),
    ErrorCode.PSC_NONCE_MISMATCH: (
        "The identity token was not issued for this login (nonce); start again.",
        "Le jeton d'identité n'a pas été émis pour cette connexion (nonce) ; recommencez.",
    ),
    ErrorCode.PSC_ACR_INSUFFICIENT: (
        "The authentication level is insufficient: a CPS card or the e-CPS app (eIDAS 1) "
        "is required.",
        "Le niveau d'authentification est insuffisant : la carte CPS ou l'application "
        "e-CPS (eIDAS 1) est requise.",
    ),
    ErrorCode.PSC_TOKEN_INVALID: (
        "Pro Santé Connect returned an invalid token.",
        "Pro Santé Connect a renvoyé un jeton invalide.",
    ),
    ErrorCode.PSC_TOKEN_EXPIRED: (
        "The Pro Santé Connect token has expired; start again.",
        "Le jeton Pro Santé Connect a expiré ; recommencez.",
    ),
    ErrorCode.PSC_PROVIDER_ERROR: (
        "Pro Santé Connect refused the login or could not be reached.",
        "Pro Santé Connect a refusé la connexion ou est injoignable.",
    ),
    ErrorCode.PSC_LOGIN_EXPIRED: (
        "This login has expired or was already used; start again.",
        "Cette connexion a expiré ou a déjà été utilisée ; recommencez.",
    ),
    ErrorCode.PSC_IDENTITY_REFUSED: (
        "Pro Santé Connect did not give a valid RPPS or ADELI national identifier.",
        "Pro Santé Connect n'a pas fourni d'identifiant national RPPS ou ADELI valide.",
    ),
    ErrorCode.PSC_SESSION_ENDED: (
        "Your Pro Santé Connect session has ended; log in again.",
        "Votre session Pro Santé Connect est terminée ; reconnectez-vous.",
    ),
    ErrorCode.NOT_IN_DIRECTORY: (
        "This professional is not (or no longer) in the directory of this server.",
        "Ce professionnel n'est pas (ou plus) dans l'annuaire de ce serveur.",
    ),
    ErrorCode.TRANSITION_REFUSED: (
        "This step of the téléexpertise is not possible in its current state.",
        "Cette étape de la téléexpertise n'est pas possible dans son état actuel.",
    ),
    ErrorCode.ROLE_REFUSED: (
        "Your role in this téléexpertise does not allow this step.",
        "Votre rôle dans cette téléexpertise ne permet pas cette étape.",
    ),
    ErrorCode.REQUIS_NOT_ELIGIBLE: (
        "Only a médecin, a sage-femme or a chirurgien-dentiste can be asked for a téléexpertise.",
        "Seul un médecin, une sage-femme ou un chirurgien-dentiste peut être sollicité "
        "pour une téléexpertise.",
    ),
    ErrorCode.BILLING_LIMIT_REACHED: (
        "This act would exceed the yearly limit for this patient; record it as not billable.",
        "Cet acte dépasserait la limite annuelle pour ce patient ; enregistrez-le comme non "
        "facturable.",
    ),
}


class RelaisError(Exception):
    """A refusal with a stable code; the transport turns it into an error frame or response."""

    def __init__(self, code: ErrorCode, detail: str | None = None) -> None:
        english, french = MESSAGES[code]
        self.code = code
        self.message = f"{english} {detail}" if detail else english
        self.message_fr = french
        super().__init__(self.message)
