// libnftables through koffi: nft commands in-process, so a DNS answer's set update costs tens of
// microseconds instead of a process spawn. Three layers: raw declarations (one per function, see
// libnftables(3) — https://manpages.debian.org/bookworm/libnftables1/libnftables.3.en.html),
// then NftContext, which owns the context handle and turns failures into errors.
import koffi from 'koffi';
import { RedirectError } from '../../errors.ts';

interface Raw {
  nft_ctx_new: (flags: number) => unknown;
  nft_ctx_free: (ctx: unknown) => void;
  nft_ctx_buffer_output: (ctx: unknown) => number;
  nft_ctx_buffer_error: (ctx: unknown) => number;
  nft_ctx_get_output_buffer: (ctx: unknown) => string | null;
  nft_ctx_get_error_buffer: (ctx: unknown) => string | null;
  nft_run_cmd_from_buffer: (ctx: unknown, buf: string) => number;
}

let raw: Raw | undefined;

function load(): Raw {
  if (raw) return raw;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libnftables.so.1');
  } catch (err) {
    throw new RedirectError('SY_ERR_SYS_LIBNFTABLES', 'cannot load libnftables.so.1 (Debian package libnftables1)', err);
  }
  raw = {
    // struct nft_ctx *nft_ctx_new(uint32_t flags);  NFT_CTX_DEFAULT = 0
    nft_ctx_new: lib.func('void *nft_ctx_new(uint32_t flags)'),
    // void nft_ctx_free(struct nft_ctx *ctx);
    nft_ctx_free: lib.func('void nft_ctx_free(void *ctx)'),
    // int nft_ctx_buffer_output(struct nft_ctx *ctx);  0 on success
    nft_ctx_buffer_output: lib.func('int nft_ctx_buffer_output(void *ctx)'),
    // int nft_ctx_buffer_error(struct nft_ctx *ctx);
    nft_ctx_buffer_error: lib.func('int nft_ctx_buffer_error(void *ctx)'),
    // const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx);  valid until the next command
    nft_ctx_get_output_buffer: lib.func('const char *nft_ctx_get_output_buffer(void *ctx)'),
    // const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx);
    nft_ctx_get_error_buffer: lib.func('const char *nft_ctx_get_error_buffer(void *ctx)'),
    // int nft_run_cmd_from_buffer(struct nft_ctx *nft, const char *buf);  0 on success
    nft_run_cmd_from_buffer: lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
  } as Raw;
  return raw;
}

/** One libnftables context. Not thread-safe; one command at a time (calls are synchronous). */
export class NftContext {
  #ctx: unknown;

  constructor() {
    const r = load();
    const ctx = r.nft_ctx_new(0);
    if (!ctx) throw new RedirectError('SY_ERR_SYS_LIBNFTABLES', 'nft_ctx_new returned NULL');
    if (r.nft_ctx_buffer_output(ctx) !== 0 || r.nft_ctx_buffer_error(ctx) !== 0) {
      r.nft_ctx_free(ctx);
      throw new RedirectError('SY_ERR_SYS_LIBNFTABLES', 'nft_ctx_buffer_output/error failed');
    }
    this.#ctx = ctx;
  }

  /** Runs a command buffer (several lines = one batch, all or nothing). Returns the output text. */
  run(commands: string): string {
    if (this.#ctx === undefined) throw new RedirectError('SY_ERR_SYS_LIBNFTABLES', 'nft context already freed');
    const r = load();
    const rc = r.nft_run_cmd_from_buffer(this.#ctx, commands);
    if (rc !== 0) {
      const msg = (r.nft_ctx_get_error_buffer(this.#ctx) ?? '').trim();
      throw new RedirectError('SY_ERR_SYS_LIBNFTABLES', `nft_run_cmd_from_buffer failed (rc ${rc}): ${msg || 'no message'}`);
    }
    return r.nft_ctx_get_output_buffer(this.#ctx) ?? '';
  }

  free(): void {
    if (this.#ctx === undefined) return;
    load().nft_ctx_free(this.#ctx);
    this.#ctx = undefined;
  }
}
