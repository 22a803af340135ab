-- schema.sql - the public credit platform's (鄂尔多斯市公共信用信息平台)
-- own database as qiao-credit uses it: credit subjects, the 双公示 records
-- (行政许可, 行政处罚), 行政强制, 严重失信主体名单, 守信激励 (红名单),
-- 刑事裁判, credit repairs (信用修复), and the 专项信用报告 issued.
--
-- Column names follow the national 双公示 data standard (XDR_ 行政相对人,
-- XK_ 行政许可, CF_ 处罚 ...) and the platform's pinyin initials for the
-- rest.  Dates are "YYYY-MM-DD" (China Standard Time), instants integer ms
-- since 1970 UTC, money as published in 万元 (decimal text, converted to fen
-- exactly by the adapter).  Every record carries a stable record id (JLBS),
-- its version (BBH, raised on every change including a repair), its source
-- department (SJLY / SJLYDM), its 行业领域 (HYLY) and when the version was
-- made (GXSJ).

-- 信用主体 (credit subjects).
CREATE TABLE xyzt (
  ztid       INTEGER PRIMARY KEY,
  xdr_mc     TEXT NOT NULL,                 -- 行政相对人名称
  xdr_lb     INTEGER NOT NULL               -- 行政相对人类别: 1 法人及非法人组织, 2 自然人, 3 个体工商户
             CHECK (xdr_lb IN (1, 2, 3)),
  zjlx       TEXT NOT NULL                  -- 代码类型: 001 统一社会信用代码, 111 居民身份证
             CHECK (zjlx IN ('001', '111')),
  xdr_dm     TEXT NOT NULL,                 -- 统一社会信用代码 / 身份证号码
  xdr_fddbr  TEXT,                          -- 法定代表人
  xdr_gszc   TEXT,                          -- 工商注册号 (legacy)
  xdr_zzjg   TEXT,                          -- 组织机构代码 (legacy)
  xdr_sydw   TEXT,                          -- 事业单位证书号 (legacy)
  UNIQUE (zjlx, xdr_dm)
);

-- 行政许可 (双公示).
CREATE TABLE xzxk (
  jlbs       TEXT PRIMARY KEY,              -- 记录标识
  bbh        INTEGER NOT NULL DEFAULT 1,    -- 版本
  ztid       INTEGER NOT NULL REFERENCES xyzt(ztid),
  xk_wsh     TEXT NOT NULL,                 -- 行政许可决定文书号
  xk_xkws    TEXT,                          -- 行政许可决定文书名称
  xk_xkzs    TEXT,                          -- 许可证书名称
  xk_xkbh    TEXT,                          -- 许可编号
  xk_lb      TEXT NOT NULL,                 -- 许可类别: 普通 特许 认可 核准 登记 其他
  xk_nr      TEXT NOT NULL,                 -- 许可内容
  xk_jdrq    TEXT NOT NULL,                 -- 许可决定日期
  xk_yxqz    TEXT NOT NULL,                 -- 有效期自
  xk_yxqzi   TEXT,                          -- 有效期至 (NULL = 长期)
  xk_xkjg    TEXT NOT NULL,                 -- 许可机关
  xk_xkjgdm  TEXT NOT NULL,                 -- 许可机关统一社会信用代码
  sjly       TEXT NOT NULL,                 -- 数据来源单位
  sjlydm     TEXT NOT NULL,                 -- 数据来源单位统一社会信用代码
  hyly       TEXT NOT NULL,                 -- 行业领域
  gxsj       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- 行政处罚 (双公示).
CREATE TABLE xzcf (
  jlbs        TEXT PRIMARY KEY,
  bbh         INTEGER NOT NULL DEFAULT 1,
  ztid        INTEGER NOT NULL REFERENCES xyzt(ztid),
  cf_wsh      TEXT NOT NULL,                -- 行政处罚决定书文号
  cf_wfxw     TEXT NOT NULL,                -- 违法行为类型
  cf_sy       TEXT NOT NULL,                -- 违法事实
  cf_yj       TEXT NOT NULL,                -- 处罚依据
  cf_cflb     TEXT NOT NULL,                -- 处罚类别, ';' between categories
  cf_nr       TEXT NOT NULL,                -- 处罚内容
  cf_nr_fk    TEXT NOT NULL DEFAULT '0',    -- 罚款金额 (万元)
  cf_nr_wfff  TEXT NOT NULL DEFAULT '0',    -- 没收违法所得、没收非法财物的金额 (万元)
  cf_nr_zkdx  TEXT,                         -- 暂扣或吊销证照名称及编号
  cf_jdrq     TEXT NOT NULL,                -- 处罚决定日期
  cf_gsjzq    TEXT,                         -- 公示截止期 (NULL for 轻微: not published)
  cf_sxcd     INTEGER NOT NULL              -- 失信程度: 1 轻微 2 一般 3 严重
              CHECK (cf_sxcd IN (1, 2, 3)),
  cf_cfjg     TEXT NOT NULL,                -- 处罚机关
  cf_cfjgdm   TEXT NOT NULL,                -- 处罚机关统一社会信用代码
  sjly        TEXT NOT NULL,
  sjlydm      TEXT NOT NULL,
  hyly        TEXT NOT NULL,
  gxsj        INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000),
  CHECK (cf_sxcd = 1 OR cf_gsjzq IS NOT NULL)
);

-- 行政强制 (措施 / 执行).
CREATE TABLE xzqz (
  jlbs       TEXT PRIMARY KEY,
  bbh        INTEGER NOT NULL DEFAULT 1,
  ztid       INTEGER NOT NULL REFERENCES xyzt(ztid),
  qz_wsh     TEXT NOT NULL,                 -- 行政强制决定书文号
  qz_zl      INTEGER NOT NULL               -- 强制种类: 1 行政强制措施 2 行政强制执行
             CHECK (qz_zl IN (1, 2)),
  qz_nr      TEXT NOT NULL,                 -- 强制内容
  qz_yj      TEXT,                          -- 强制依据
  qz_jdrq    TEXT NOT NULL,                 -- 决定日期
  qz_ssjg    TEXT NOT NULL,                 -- 实施机关
  qz_ssjgdm  TEXT NOT NULL,                 -- 实施机关统一社会信用代码
  sjly       TEXT NOT NULL,
  sjlydm     TEXT NOT NULL,
  hyly       TEXT NOT NULL,
  gxsj       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- 严重失信主体名单.
CREATE TABLE yzsxmd (
  jlbs      TEXT PRIMARY KEY,
  bbh       INTEGER NOT NULL DEFAULT 1,
  ztid      INTEGER NOT NULL REFERENCES xyzt(ztid),
  md_mc     TEXT NOT NULL,                  -- 名单名称
  lr_sy     TEXT NOT NULL,                  -- 列入事由
  rd_yj     TEXT,                           -- 认定依据
  rd_wsh    TEXT NOT NULL,                  -- 认定文书号
  lr_rq     TEXT NOT NULL,                  -- 列入日期
  yc_rq     TEXT,                           -- 移出日期 (NULL = not yet set)
  rd_jg     TEXT NOT NULL,                  -- 认定机关
  rd_jgdm   TEXT NOT NULL,                  -- 认定机关统一社会信用代码
  sjly      TEXT NOT NULL,
  sjlydm    TEXT NOT NULL,
  hyly      TEXT NOT NULL,
  gxsj      INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- 守信激励 (红名单).
CREATE TABLE sxjlmd (
  jlbs      TEXT PRIMARY KEY,
  bbh       INTEGER NOT NULL DEFAULT 1,
  ztid      INTEGER NOT NULL REFERENCES xyzt(ztid),
  md_mc     TEXT NOT NULL,                  -- 名单名称
  lr_sy     TEXT NOT NULL,                  -- 列入事由 / 激励事项
  rd_wsh    TEXT,                           -- 认定文书号
  lr_rq     TEXT NOT NULL,                  -- 列入日期
  yxqz      TEXT,                           -- 有效期至 (NULL = no end)
  rd_jg     TEXT NOT NULL,
  rd_jgdm   TEXT NOT NULL,
  sjly      TEXT NOT NULL,
  sjlydm    TEXT NOT NULL,
  hyly      TEXT NOT NULL,
  gxsj      INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- 刑事裁判 (from the courts).
CREATE TABLE xscp (
  jlbs      TEXT PRIMARY KEY,
  bbh       INTEGER NOT NULL DEFAULT 1,
  ztid      INTEGER NOT NULL REFERENCES xyzt(ztid),
  cp_ah     TEXT NOT NULL,                  -- 案号
  cp_fymc   TEXT NOT NULL,                  -- 裁判法院
  cp_zm     TEXT NOT NULL,                  -- 罪名
  cp_pjjg   TEXT NOT NULL,                  -- 判决结果
  cp_cprq   TEXT NOT NULL,                  -- 裁判日期
  sjly      TEXT NOT NULL,
  sjlydm    TEXT NOT NULL,
  hyly      TEXT NOT NULL,
  gxsj      INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- 信用修复: one accepted repair per record (any of the tables above, by
-- JLBS); the record's BBH is raised when it is repaired.
CREATE TABLE xyxf (
  jlbs    TEXT PRIMARY KEY,                 -- 被修复记录标识
  xf_rq   TEXT NOT NULL,                    -- 修复日期
  xf_wsh  TEXT,                             -- 修复决定文书号
  xf_jg   TEXT                              -- 修复机关
);

-- 专项信用报告 (replaces 无违法违规证明): every report issued, with the
-- exact bytes signed.
CREATE TABLE xybg (
  bgid    INTEGER PRIMARY KEY,
  bgbh    TEXT UNIQUE,                      -- 报告编号 (set once the row exists)
  zjlx    TEXT NOT NULL,                    -- 代码类型 001 / 111
  xdr_dm  TEXT NOT NULL,                    -- 信用主体代码
  xdr_mc  TEXT NOT NULL,                    -- 主体名称
  bgqq    TEXT NOT NULL,                    -- 报告期起
  bgqz    TEXT NOT NULL,                    -- 报告期止
  bgyt    TEXT NOT NULL,                    -- 报告用途
  hyly    TEXT NOT NULL DEFAULT '',         -- 行业领域 requested, '、' between them ('' = all)
  sxs     INTEGER NOT NULL DEFAULT 0,       -- 报告事项数
  yxfs    INTEGER NOT NULL DEFAULT 0,       -- 其中已修复
  wbljl   INTEGER NOT NULL DEFAULT 0,       -- 无违法违规记录 (no_adverse_records)
  sqf     TEXT NOT NULL,                    -- 申请方 (member id)
  jbr     TEXT NOT NULL,                    -- 经办人 (Header.user_id)
  sqsy    TEXT,                             -- 申请事由
  cjsj    INTEGER NOT NULL,                 -- 出具时间, ms
  bgbw    BLOB,                             -- 报告报文: encoded qiao.v1.CreditReport as signed
  qmsf    INTEGER,                          -- 签名算法
  qmmy    TEXT,                             -- 密钥标识
  qmz     BLOB,                             -- 签名值
  qmsj    INTEGER                           -- 签名时间, ms
);
CREATE INDEX xybg_zt ON xybg (zjlx, xdr_dm);
