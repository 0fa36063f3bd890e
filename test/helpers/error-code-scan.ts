import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

/** Where a code is given to an error, or put in an error reply. */
export interface CodeSite {
  readonly code: string
  readonly file: string
  readonly line: number
}

/** What {@link scanErrorCodes} finds in the product's sources. */
export interface CodeScan {
  /** Codes given as string literals: to an error constructor's `code`, to `super` of an error class, or as `code:` of an object. */
  readonly sites: readonly CodeSite[]
  /** Every string literal of the sources (the table's keys are identifiers, so it adds none of its codes). */
  readonly literals: ReadonlySet<string>
  /** The error classes found (MeshsyncError and its subclasses). */
  readonly errorClasses: ReadonlySet<string>
}

const PRODUCT_DIRS = ['crdt', 'transport', 'daemon']

function sourceFiles(root: string, dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(root, path))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/** The string literals an expression can evaluate to as written (`a ? 'X' : 'Y'`, `x ?? 'Z'`). */
function literalsOf(node: ts.Expression): string[] {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return [node.text]
  if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node) || ts.isSatisfiesExpression(node)) return literalsOf(node.expression)
  if (ts.isConditionalExpression(node)) return [...literalsOf(node.whenTrue), ...literalsOf(node.whenFalse)]
  if (ts.isBinaryExpression(node) && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(node.operatorToken.kind)) {
    return [...literalsOf(node.left), ...literalsOf(node.right)]
  }
  return []
}

interface ClassInfo {
  readonly base: string | undefined
  /** The name of the constructor's first parameter (undefined: no constructor of its own). */
  readonly firstParam: string | undefined
}

/**
 * Reads every TypeScript file of crdt/, transport/ and daemon/ (the product) and finds the error
 * codes written in them: the first argument of `new X(...)` where X is an error class whose
 * constructor's first parameter is `code`, the first argument of `super(...)` in an error class
 * whose base takes a code first, and every `code: '...'` property (error replies).
 */
export function scanErrorCodes(root: string): CodeScan {
  const files = PRODUCT_DIRS.flatMap((dir) => sourceFiles(root, dir))
  const parsed = files.map((file) => ({ file, source: ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true) }))

  const classes = new Map<string, ClassInfo>()
  for (const { source } of parsed) {
    const visit = (node: ts.Node): void => {
      if (ts.isClassDeclaration(node) && node.name) {
        const heritage = node.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword)?.types[0]?.expression
        const ctor = node.members.find(ts.isConstructorDeclaration)
        const first = ctor?.parameters[0]?.name
        classes.set(node.name.text, {
          base: heritage && ts.isIdentifier(heritage) ? heritage.text : undefined,
          firstParam: first && ts.isIdentifier(first) ? first.text : undefined,
        })
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  const isErrorClass = (name: string | undefined): boolean => {
    for (let n = name, hops = 0; n !== undefined && hops < 20; n = classes.get(n)?.base, hops++) if (n === 'MeshsyncError') return true
    return false
  }
  /** Whether `new name(code, ...)` takes a code first (its own constructor, or the nearest one it inherits). */
  const takesCodeFirst = (name: string | undefined): boolean => {
    for (let n = name, hops = 0; n !== undefined && hops < 20; n = classes.get(n)?.base, hops++) {
      const info = classes.get(n)
      if (info?.firstParam !== undefined) return info.firstParam === 'code'
    }
    return false
  }
  const errorClasses = new Set([...classes.keys()].filter(isErrorClass))

  const sites: CodeSite[] = []
  const literals = new Set<string>()
  for (const { file, source } of parsed) {
    const add = (code: string, node: ts.Node): void => {
      sites.push({ code, file, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 })
    }
    const enclosingClass = (node: ts.Node): ts.ClassDeclaration | undefined => {
      for (let n: ts.Node | undefined = node.parent; n; n = n.parent) if (ts.isClassDeclaration(n)) return n
      return undefined
    }
    const visit = (node: ts.Node): void => {
      if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) literals.add(node.text)
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && errorClasses.has(node.expression.text) && takesCodeFirst(node.expression.text)) {
        const first = node.arguments?.[0]
        if (first) for (const code of literalsOf(first)) add(code, first)
      }
      if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.SuperKeyword) {
        const owner = enclosingClass(node)
        const base = owner?.name ? classes.get(owner.name.text)?.base : undefined
        const first = node.arguments[0]
        if (first && owner?.name && errorClasses.has(owner.name.text) && takesCodeFirst(base)) for (const code of literalsOf(first)) add(code, first)
      }
      if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name)) && node.name.text === 'code') {
        for (const code of literalsOf(node.initializer)) add(code, node.initializer)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return { sites, literals, errorClasses }
}

/** A site's place, for failure messages. */
export function where(site: CodeSite, root: string): string {
  return `${relative(root, join(root, site.file))}:${site.line} (${site.code})`
}
