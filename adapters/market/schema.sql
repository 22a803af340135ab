-- schema.sql - the market regulator's (鄂尔多斯市市场监督管理局) own database
-- as qiao-market uses it: the market entity register (市场主体登记), the
-- electronic licence library (电子证照库) with every signed version of every
-- licence, the status-change decisions, and the outbox of licence events
-- published to the Qiao gateway.
--
-- Column names follow the regulator's systems: the register uses the
-- SAMR data-element names (UNISCID, ENTNAME, ...), the licence library the
-- pinyin initials of the GB/T 36903 metadata names (ZZBS 证照标识, ZZMC
-- 证照名称, CZZT 持证主体, ...).  Dates are "YYYY-MM-DD" (China Standard
-- Time), instants integer ms since 1970 UTC.

-- 证照类型目录: the licence types this regulator issues.
CREATE TABLE zzlx (
  zzlxdm  TEXT PRIMARY KEY               -- 证照类型代码: USCC of the defining authority + 3 digits
          CHECK (length(zzlxdm) = 21),
  zzlxmc  TEXT NOT NULL,                 -- 证照类型名称, e.g. 营业执照
  czztlx  TEXT NOT NULL                  -- 持证主体代码类型 allowed: 001 统一社会信用代码, 111 居民身份证
          CHECK (czztlx IN ('001', '111')),
  wyyx    INTEGER NOT NULL DEFAULT 0     -- 1: a holder has at most one 有效/暂扣 licence of this type
);

-- 市场主体登记信息 (market entity register), one row per entity.
CREATE TABLE sczt (
  uniscid   TEXT PRIMARY KEY,            -- 统一社会信用代码
  entname   TEXT NOT NULL,               -- 企业名称 / 个体工商户字号
  enttype   TEXT NOT NULL,               -- 市场主体类型, e.g. 有限责任公司(自然人投资或控股)
  lerep     TEXT,                        -- 法定代表人 / 经营者
  regcap    TEXT,                        -- 注册资本 (万元人民币), as registered
  estdate   TEXT NOT NULL,               -- 成立日期
  opfrom    TEXT,                        -- 营业期限自
  opto      TEXT,                        -- 营业期限至 (NULL = 长期)
  dom       TEXT,                        -- 住所 / 经营场所
  opscope   TEXT,                        -- 经营范围
  regorg    TEXT NOT NULL,               -- 登记机关
  apprdate  TEXT,                        -- 核准日期
  regstate  TEXT NOT NULL                -- 登记状态
            CHECK (regstate IN ('存续', '在业', '吊销', '注销', '迁出'))
);

-- 电子证照 (licence library): the current state of each licence.  A row of
-- seed.sql carries the licence fields; qiao-market assigns ZZBS and signs
-- the current version (dzzz_bb) at its first start.
CREATE TABLE dzzz (
  zzid      INTEGER PRIMARY KEY,         -- internal row id
  zzbs      TEXT UNIQUE,                 -- 证照标识 1.2.156.3005.2.T.I.N.V.C (NULL until assigned)
  zzmc      TEXT NOT NULL,               -- 证照名称
  zzlxdm    TEXT NOT NULL REFERENCES zzlx(zzlxdm),  -- 证照类型代码 (T)
  zzbh      TEXT NOT NULL,               -- 证照编号 as printed (营业执照: the holder's USCC)
  xlh       TEXT NOT NULL,               -- 证照序列号 (N): year + 7-digit sequence
  bbdm      TEXT NOT NULL DEFAULT '001'  -- 证照版本代码 (V): the edition
            CHECK (length(bbdm) = 3),
  qfjg      TEXT NOT NULL,               -- 颁发机构
  qfjgdm    TEXT NOT NULL,               -- 颁发机构代码 (I): this regulator's USCC
  gxsd      TEXT NOT NULL,               -- 管辖属地 (GB/T 2260)
  czzt      TEXT NOT NULL,               -- 持证主体
  czztdm    TEXT NOT NULL,               -- 持证主体代码
  czztdmlx  TEXT NOT NULL                -- 持证主体代码类型: 001 USCC, 111 居民身份证
            CHECK (czztdmlx IN ('001', '111')),
  qfrq      TEXT NOT NULL,               -- 颁发日期
  yxqqsrq   TEXT NOT NULL,               -- 有效期起始日期
  yxqjzrq   TEXT,                        -- 有效期截止日期 (NULL = 长期)
  zzzt      TEXT NOT NULL                -- 证照状态: 01 有效 02 暂扣 03 撤销 04 注销 05 失效 07 吊销
            CHECK (zzzt IN ('01', '02', '03', '04', '05', '07')),
  bbh       INTEGER NOT NULL DEFAULT 1,  -- 记录版本 (ElectronicLicence.version) of the current version
  bbsj      INTEGER,                     -- 版本时间, ms (NULL in the seed: set when first signed)
  nrlx      TEXT,                        -- 证照内容类型 (typed content), NULL = none
  nr        BLOB,                        -- 证照内容
  bswjzy    BLOB,                        -- 版式文件摘要 (SHA-256 of the OFD file)
  sqbh      TEXT UNIQUE,                 -- 申请编号: idempotency key of licence-issue.v1
  sqf       TEXT,                        -- 申请方 (member id that asked for the licence)
  UNIQUE (zzlxdm, qfjgdm, xlh, bbdm)
);
CREATE INDEX dzzz_czzt ON dzzz (czztdm, czztdmlx, zzlxdm);

-- 照面信息 (face items) of a licence, in print order.
CREATE TABLE dzzz_zmxx (
  zzid  INTEGER NOT NULL REFERENCES dzzz(zzid),
  xh    INTEGER NOT NULL,                -- 序号
  xmmc  TEXT NOT NULL,                   -- 项目名称
  xmnr  TEXT NOT NULL DEFAULT '',        -- 项目内容
  PRIMARY KEY (zzid, xh)
);

-- 关联证照标识 (related licences, e.g. the licence this one replaces).
-- A related licence of this library may be named by its row (GLZZID), and
-- its identifier is filled in when assigned.
CREATE TABLE dzzz_glzz (
  zzid    INTEGER NOT NULL REFERENCES dzzz(zzid),
  xh      INTEGER NOT NULL,
  glzzid  INTEGER REFERENCES dzzz(zzid), -- the related licence's row, when it is ours
  glzzbs  TEXT,                          -- 关联证照标识
  PRIMARY KEY (zzid, xh),
  CHECK (glzzid IS NOT NULL OR glzzbs IS NOT NULL)
);

-- 证照版本库: every signed version of every licence, never changed once
-- written.  ZZBW holds the exact bytes that were signed and are served.
CREATE TABLE dzzz_bb (
  zzid  INTEGER NOT NULL REFERENCES dzzz(zzid),
  bbh   INTEGER NOT NULL,                -- 记录版本
  zzzt  TEXT NOT NULL,                   -- 证照状态 of this version
  zzbw  BLOB NOT NULL,                   -- 证照报文: encoded qiao.v1.ElectronicLicence
  qmsf  INTEGER NOT NULL,                -- 签名算法 (1 = ED25519_SHA256)
  qmmy  TEXT NOT NULL,                   -- 密钥标识 "<member>#<fingerprint>"
  qmz   BLOB NOT NULL,                   -- 签名值
  qmsj  INTEGER NOT NULL,                -- 签名时间, ms
  PRIMARY KEY (zzid, bbh)
);

-- 证照状态变更记录: one row per administrative decision applied.
CREATE TABLE dzzz_ztbg (
  bgid   INTEGER PRIMARY KEY,
  zzid   INTEGER NOT NULL REFERENCES dzzz(zzid),
  ybbh   INTEGER NOT NULL,               -- 原版本
  xbbh   INTEGER NOT NULL,               -- 新版本
  yzt    TEXT NOT NULL,                  -- 原状态
  xzt    TEXT NOT NULL,                  -- 新状态
  jdswh  TEXT NOT NULL,                  -- 决定文书号
  bgyy   TEXT NOT NULL,                  -- 变更原因
  sxrq   TEXT NOT NULL,                  -- 生效日期
  sqf    TEXT NOT NULL,                  -- 申请方 (member id)
  jbr    TEXT NOT NULL,                  -- 经办人 (Header.user_id)
  bgsj   INTEGER NOT NULL,               -- 变更时间, ms
  UNIQUE (zzid, jdswh, xzt)              -- a decision is applied once
);

-- 证照事件发布 (outbox): one LicenceEvent per issue or status change,
-- written in the same transaction as the change, published to the gateway
-- in SJID order by the adapter's publisher.
CREATE TABLE dzzz_sjfb (
  sjid  INTEGER PRIMARY KEY AUTOINCREMENT,
  zzid  INTEGER NOT NULL REFERENCES dzzz(zzid),
  zzbs  TEXT NOT NULL,                   -- 证照标识
  bbh   INTEGER NOT NULL,                -- 新版本
  sjlx  INTEGER NOT NULL,                -- 事件类型 (qiao.v1.LicenceEventType)
  sjsj  INTEGER NOT NULL,                -- 事件时间, ms
  sjbw  BLOB NOT NULL,                   -- 事件报文: encoded qiao.v1.LicenceEvent
  fbbz  INTEGER NOT NULL DEFAULT 0      -- 发布标志: 0 pending, 1 published (the gateway answered),
        CHECK (fbbz IN (0, 1, 2)),        -- 2 refused for good by the gateway (see ZHCW; not retried)
  fbsj  INTEGER,                         -- 发布时间, ms
  cscs  INTEGER NOT NULL DEFAULT 0,      -- 尝试次数
  zhcw  TEXT                             -- 最后错误 (why the last attempt failed)
);
CREATE INDEX dzzz_sjfb_dfb ON dzzz_sjfb (fbbz, sjid);

-- 证照序列号 (serial numbers): the last sequence used per year.
CREATE TABLE zzxlh (
  nd   INTEGER PRIMARY KEY,              -- 年度
  dqz  INTEGER NOT NULL                  -- 当前值
);
