// Every error the server answers has a stable code and a message in English and French
// (docs/api.md, "Errors"); the app shows the message of the user's language and the code.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly messageFr: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The network failed: the request may or may not have reached the server. */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkError";
  }
}

export async function errorFromResponse(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as {
      error?: { code?: string; message?: string; message_fr?: string };
    };
    const error = body.error ?? {};
    return new ApiError(
      response.status,
      error.code ?? "internal",
      error.message ?? response.statusText,
      error.message_fr ?? error.message ?? response.statusText,
    );
  } catch {
    return new ApiError(response.status, "internal", response.statusText, response.statusText);
  }
}
