/**
 * `tokens create | list | revoke`: upload API tokens per org. Creating a token registers its org for
 * the API, so an org needs no FTP source to use the API (an FTP tenant can have tokens too).
 */
import { ORG_PATTERN } from '../config.js';
import type { ApiTokenInfo } from '../ports/api.js';
import type { OpsContext } from './context.js';

function checkOrg(org: string): void {
  if (!ORG_PATTERN.test(org)) {
    throw new Error(
      `--org ${JSON.stringify(org)}: expected lower-case letters, digits, - and _ (at most 63)`,
    );
  }
}

export async function createToken(
  ctx: OpsContext,
  org: string,
): Promise<{ token: string; info: ApiTokenInfo }> {
  checkOrg(org);
  return ctx.apiTokens.create(org);
}

export async function listTokens(ctx: OpsContext, org?: string): Promise<ApiTokenInfo[]> {
  if (org !== undefined) checkOrg(org);
  return ctx.apiTokens.list(org);
}

export async function revokeToken(ctx: OpsContext, org: string, id: string): Promise<void> {
  checkOrg(org);
  if (!(await ctx.apiTokens.revoke(org, id))) {
    throw new Error(
      `--id ${JSON.stringify(id)}: org "${org}" has no such token (see: ftp-sync tokens list --org ${org})`,
    );
  }
}
